"""Process settings, read from the environment (prefix ``CORRESPONDANCE_``) or a ``.env`` file."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from correspondance.geo import WALK_SPEED_M_S

REPO_ROOT = Path(__file__).resolve().parent.parent


class Limits(BaseModel):
    """Every size limit of a request, in one place (``CORRESPONDANCE_LIMITS`` as JSON, e.g.
    ``{"max_body_bytes": 2097152}``). Enforced by ``api.limits`` (bodies, JSON depth) and
    by uvicorn's options built there (headers, websocket messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        le=1 << 30,
        description="Largest request body (413 beyond; counted as it streams). Reports keep "
        "their own, smaller limit.",
    )
    max_json_depth: int = Field(
        default=32, ge=4, le=512, description="Deepest nesting of arrays/objects (400 beyond)."
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1 << 20,
        description="Request line plus headers (431 beyond, before the app sees them).",
    )
    max_ws_message_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 << 20,
        description="Largest websocket message a client may send (close 1009 beyond).",
    )


class Settings(BaseSettings):
    """Settings of one Correspondance process.

    ``REDIS_URL`` is read without prefix, as is conventional; with it unset the embedded
    in-process backend is used.
    """

    model_config = SettingsConfigDict(env_prefix="CORRESPONDANCE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=REPO_ROOT / "data", description="Folder of city bundles.")
    cache_dir: Path = Field(default=REPO_ROOT / "var" / "cache", description="Build cache.")
    frontend_dir: Path = Field(default=REPO_ROOT / "frontend", description="Web app files.")
    default_city: str | None = Field(default=None, description="City served when none is named.")
    redis_url: str | None = Field(
        default=None, validation_alias="REDIS_URL", description="Redis for shared state."
    )
    role: Literal["all", "api", "worker"] = Field(
        default="all",
        description=(
            "Which live parts this process runs (realtime/runtime.py): all (embedded: writer "
            "election, trip engine, websockets), api (websockets; mirrors the writer), worker "
            "(writer election and trip engine, no HTTP)."
        ),
    )
    walk_speed_m_s: float = Field(default=WALK_SPEED_M_S, gt=0.2, lt=5.0)
    max_access_walk_s: float = Field(default=1200.0, gt=0, description="Walk to/from transit.")
    max_transfer_walk_m: float = Field(default=400.0, gt=0)
    max_snap_distance_m: float = Field(default=500.0, gt=0)
    live_feeds: bool = Field(default=True, description="Run live feed ingestion (writer).")
    replay_speed: float = Field(
        default=60.0, gt=0, le=100_000, description="Speed of recorded GBFS days replayed as live."
    )
    redis_prefix: str = Field(
        default="corr:", min_length=1, max_length=64, description="Key namespace on Redis."
    )
    # -- the perimeter (issue 11) -----------------------------------------------------------
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For "
            "and X-Forwarded-Proto headers are believed (e.g. '127.0.0.1' for an nginx on "
            "the same host). Empty (the default): no forwarding header is believed and the "
            "client address is the socket peer's."
        ),
    )
    limits: Limits = Field(default_factory=Limits, description="Request size limits.")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {item!r} is not an IP address or network"
                ) from None
        return ",".join(items)

    @property
    def trusted_proxy_list(self) -> list[str]:
        """:attr:`trusted_proxies` as a list (empty: trust no forwarding header)."""
        return [item for item in self.trusted_proxies.split(",") if item]

    # -- operators --------------------------------------------------------------------------
    operators_file: Path = Field(
        default=REPO_ROOT / "var" / "operators.json",
        description="Operator accounts (argon2 hashes) of the embedded deployment, without Redis.",
    )
    operator_token_ttl_s: float = Field(
        default=900.0, gt=0, le=86_400, description="Lifetime of operator bearer tokens."
    )
    # -- crowdsourced reports (issue 5) ---------------------------------------------------
    contributor_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Key of the HMAC that turns contributor tokens and client addresses into the only "
            "form kept. Unset: a random secret is generated at first start and kept in the "
            "store (Redis key 'cs:secret') or in 'secret_file' (embedded), so hashes stay "
            "stable across restarts. Set it in production and keep it out of the store's "
            "backups. Never logged."
        ),
    )
    secret_file: Path = Field(
        default=REPO_ROOT / "var" / "secret",
        description="Where the embedded deployment keeps its generated contributor secret.",
    )
    report_ttl_s: float = Field(
        default=86_400.0, gt=0, le=30 * 86_400, description="How long raw reports are kept."
    )
    report_max_age_s: float = Field(
        default=3_600.0, gt=0, le=86_400, description="Oldest observation a report may carry."
    )
    simulated_feeds_at: float | None = Field(
        default=None,
        description=(
            "Freeze simulated GBFS feeds at this Unix time instead of following the wall "
            "clock (their availability follows the time of day): reproducible tests and demos."
        ),
    )
    demo: bool = Field(
        default=False,
        description=(
            "Enable the scripted live-trip demo (GET /api/v1/demo, POST /api/v1/trips/{id}/demo):"
            " simulated contributors report a jam on a trip's route. Never on in production."
        ),
    )
    trip_min_saving_s: float = Field(
        default=180.0, ge=0, description="A switch must save at least this many seconds..."
    )
    trip_min_fraction: float = Field(
        default=0.10, ge=0, le=1, description="...and this share of the remaining time."
    )
    fusion_k: int = Field(
        default=2, ge=1, le=100, description="Distinct contributors (and networks) to corroborate."
    )
    report_limits: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Overrides of crowdsource.abuse.AbuseLimits by field name, as JSON "
            '(e.g. {"address_per_minute": 100000} for a load test from one address).'
        ),
    )
    # -- the live runtime: election and partitions (issue 10/11) -------------------------
    writer_lock_ttl_s: float = Field(
        default=15.0,
        ge=1.0,
        le=300.0,
        description=(
            "Expiry of a city's writer lock. Standbys take over within about this long after "
            "the writer dies; a writer that cannot confirm its lock for half of it stops."
        ),
    )
    warm_up: bool = Field(
        default=True,
        description="Plan one trip at start-up so compiled kernels are loaded before users come.",
    )
    trip_partitions: int = Field(
        default=16, ge=1, le=1024, description="Partitions of each city's active trips."
    )
    trip_lease_ttl_s: float = Field(
        default=6.0,
        ge=1.0,
        le=60.0,
        description="Expiry of an engine's lease on a trip partition (takeover after a crash).",
    )
