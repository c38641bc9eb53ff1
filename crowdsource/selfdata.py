"""A contributor's own data: export it, delete all of it.

Backs ``GET`` and ``DELETE /api/v1/me/reports``. Everything linked to a contributor hash
lives under keys this module knows: reports and their index (:class:`ReportRepository`),
the trust weight (:class:`ContributorWeights`) and the abuse records (:class:`AbuseGuard`).
"""

from __future__ import annotations

from typing import Any

from crowdsource.abuse import AbuseGuard
from crowdsource.fusion import ContributorWeights
from crowdsource.repository import ReportRepository


async def export_contributor(
    contributor: str, repositories: list[ReportRepository], weights: ContributorWeights
) -> dict[str, Any]:
    """Everything kept about a contributor, as JSON-compatible data.

    Parameters
    ----------
    contributor : str
        Keyed hash of their token.
    repositories : list of ReportRepository
        One per city.
    weights : ContributorWeights
        Trust weights.

    Returns
    -------
    dict
        ``{"reports": [...], "weight": float or None}`` (``None``: no weight kept).
    """
    reports = [r for repo in repositories for r in await repo.export(contributor)]
    raw = await weights.store.get(weights.key(contributor))
    return {
        "reports": sorted(reports, key=lambda r: float(r["observed_at"])),
        "weight": float(raw) if raw is not None else None,
    }


async def delete_contributor(
    contributor: str,
    repositories: list[ReportRepository],
    weights: ContributorWeights,
    guards: list[AbuseGuard],
) -> int:
    """Delete everything linked to a contributor; fusion forgets them at its next run.

    Parameters
    ----------
    contributor, repositories, weights
        As for :func:`export_contributor`.
    guards : list of AbuseGuard
        One per city (rate-limit counters, last position).

    Returns
    -------
    int
        Number of reports deleted.
    """
    deleted = 0
    for repo in repositories:
        deleted += await repo.delete_all(contributor)
    await weights.forget(contributor)
    for guard in guards:
        await guard.forget(contributor)
    return deleted
