"""Unknown query parameters are refused, on every documented HTTP route.

One app-wide dependency compares the request's query parameter names with the ones the
matched route declares (FastAPI's own dependency tree, so the list cannot drift from the
route or from the OpenAPI document, which this leaves unchanged). Pages outside the
document (``/``, ``/docs``, ``/operator``, ...) and websockets (whose parameters are read
by hand, ``docs/protocol.md``) are not checked.
"""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from correspondance.errors import InputError


class UnknownParameterError(InputError):
    """A request names a query parameter its route does not take (HTTP 400)."""

    code = "unknown_parameter"


_DECLARED: dict[int, tuple[APIRoute, frozenset[str]]] = {}


def declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameter names (aliases) a route declares: its own and its dependencies',
    and those its OpenAPI extra documents (read by hand); computed once per route."""
    hit = _DECLARED.get(id(route))
    if hit is not None and hit[0] is route:
        return hit[1]
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    # parameters a route reads by hand for speed are declared in its OpenAPI extra
    for param in (route.openapi_extra or {}).get("parameters", []):
        if isinstance(param, dict) and param.get("in") == "query":
            names.add(str(param["name"]))
    _DECLARED[id(route)] = (route, frozenset(names))
    return frozenset(names)


async def reject_unknown_query(connection: HTTPConnection) -> None:
    """Dependency: raise :class:`UnknownParameterError` naming every unknown parameter.

    Raises
    ------
    UnknownParameterError
        If the query string holds a name the matched route does not declare.
    """
    route = connection.scope.get("route")
    if connection.scope["type"] != "http" or not isinstance(route, APIRoute):
        return
    if not route.include_in_schema:
        return
    unknown = sorted(set(connection.query_params) - declared_query(route))
    if unknown:
        accepted = ", ".join(sorted(declared_query(route))) or "none"
        raise UnknownParameterError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; {route.path} accepts: {accepted}",
            field=unknown[0],
        )
