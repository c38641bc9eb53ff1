"""docker-compose.yml and Dockerfile keep their promises (no Docker engine needed).

``docker-compose config`` (Debian package ``docker-compose``) validates the file against the
Compose schema; PyYAML then checks what the deployment relies on: Redis persists, API and
worker share one Redis, the API waits for Redis, and there is exactly one worker.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the "KEY=value" list form
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_docker_compose_validates_the_file() -> None:
    if not DOCKER_COMPOSE.exists():
        pytest.fail(
            f"{DOCKER_COMPOSE} is missing: run the setup script "
            "(it installs Debian's docker-compose: `apt-get install -y docker-compose`)"
        )
    result = subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Warnings (unset variables, ignored keys) mean the file does not do what it says.
    assert "WARNING" not in result.stderr, result.stderr


def test_services_are_redis_api_and_one_worker(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"redis", "api", "worker"}


def test_redis_persists_with_aof_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-\w+)?", redis["image"])
    command = _command(redis)
    assert command[command.index("--appendonly") + 1] == "yes"
    # "always": an acknowledged report is on disk (tests/crowdsource/test_durability.py)
    assert command[command.index("--appendfsync") + 1] == "always"
    data_volumes = [v.split(":")[0] for v in redis["volumes"] if v.split(":")[1] == "/data"]
    assert len(data_volumes) == 1
    assert data_volumes[0] in compose["volumes"]  # named, so it survives `down`
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_api_and_worker_share_redis_and_the_city_cache(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    api, worker = services["api"], services["worker"]
    assert _environment(api)["REDIS_URL"] == "redis://redis:6379/0"
    assert _environment(worker)["REDIS_URL"] == _environment(api)["REDIS_URL"]
    assert _environment(api)["CORRESPONDANCE_ROLE"] == "api"
    assert _environment(worker)["CORRESPONDANCE_ROLE"] == "worker"
    assert api["image"] == worker["image"]
    assert api["build"] == worker["build"] == "."
    cache = "city-cache:/app/var"
    assert cache in api["volumes"]
    assert cache in worker["volumes"]
    assert "city-cache" in compose["volumes"]


def test_api_and_worker_commands_and_health(services: dict[str, dict[str, Any]]) -> None:
    api, worker = services["api"], services["worker"]
    # two API processes (what tests/api/test_topology.py starts as real processes)
    assert _command(api) == [
        "correspondance",
        "serve",
        "--workers",
        "2",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert _command(worker) == ["correspondance", "worker"]
    assert api["ports"] == ["8000:8000"]
    assert "ports" not in worker
    assert "http://localhost:8000/api/v1/health" in " ".join(api["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_wait_for_healthy_redis(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_exactly_one_worker(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    replicas = worker.get("deploy", {}).get("replicas", 1)
    assert replicas == 1
    assert worker.get("scale", 1) == 1
    # Only the worker writes live state.
    writers = [
        name
        for name, service in services.items()
        if _environment(service).get("CORRESPONDANCE_ROLE") in {"worker", "all"}
    ]
    assert writers == ["worker"]


def test_dockerfile_installs_with_the_lock_and_runs_unprivileged() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages[-1] == "FROM python:3.11-slim"  # the runtime stage
    # the web app's npm packages come from the lockfile, in their own stage
    assert any("npm ci" in line for line in lines)
    assert "COPY --from=web /web/node_modules ./frontend/node_modules" in lines
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert "pip install -c requirements.lock ." in lines[install]
    data = next(i for i, line in enumerate(lines) if line.startswith("COPY data"))
    assert install < data  # data changes do not reinstall packages
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}


def test_app_services_get_longer_to_stop_than_they_take(
    services: dict[str, dict[str, Any]],
) -> None:
    # docker stop's default 10 s would SIGKILL a worker still giving its leases back, and
    # an API process still stepping down after its requests' grace (api/cli.py)
    from api.cli import GRACEFUL_SHUTDOWN_S, WORKER_STOP_TIMEOUT_S

    def seconds(text: str) -> float:
        assert text.endswith("s"), text
        return float(text[:-1])

    assert seconds(services["worker"]["stop_grace_period"]) > WORKER_STOP_TIMEOUT_S
    assert seconds(services["api"]["stop_grace_period"]) > GRACEFUL_SHUTDOWN_S + 10
