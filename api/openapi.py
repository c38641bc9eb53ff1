"""The OpenAPI document says what the API does (schemathesis checks it in the test suite).

FastAPI's generated document assumes its defaults, which this API replaces:

* request validation errors are ``400 invalid_parameter`` with ``{"error": ...}``
  (``api/errors.py``), never FastAPI's ``422`` ``HTTPValidationError`` (a ``422`` a route
  declares itself, e.g. ``outside_city``, stays);
* every request with a body may get ``413 body_too_large`` or ``400 too_deep`` from
  ``api/limits.py``;
* the report routes read their body and the ``X-Contributor-Token`` header by hand (for
  speed), so the document is told about both here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from crowdsource.models import BatchIn, ReportIn
from crowdsource.tokens import TOKEN_HEADER

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
VALIDATION_REF = "#/components/schemas/HTTPValidationError"
BODY_METHODS = frozenset({"post", "put", "patch", "delete"})
TOKEN_PARAMETER = {
    "name": TOKEN_HEADER,
    "in": "header",
    "required": True,
    "description": "The device's contributor token (16–128 characters of A–Z a–z 0–9 _ -); "
    "kept only as a keyed hash.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$"},
}
TOKEN_ROUTES = {
    ("/api/v1/reports", "post"),
    ("/api/v1/reports/batch", "post"),
    ("/api/v1/me/reports", "get"),
    ("/api/v1/me/reports", "delete"),
}
REPORT_BODIES = {
    ("/api/v1/reports", "post"): "ReportIn",
    ("/api/v1/reports/batch", "post"): "BatchIn",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _uses_validation_error(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    return bool(content.get("schema", {}).get("$ref") == VALIDATION_REF)


def fix_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's document so that it matches what the API sends (in place).

    Parameters
    ----------
    schema : dict
        The document ``FastAPI.openapi()`` generated.

    Returns
    -------
    dict
        The same document.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(ReportIn, "validation"), (BatchIn, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    components.update(defs.get("$defs", {}))
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses and _uses_validation_error(responses["422"]):
                del responses["422"]
                responses.setdefault("400", _error("Invalid parameter (invalid_parameter)."))
            if method in BODY_METHODS:
                responses.setdefault(
                    "400", _error("Invalid request (e.g. too_deep: JSON nested too deeply).")
                )
                responses.setdefault("413", _error("Request body too large (body_too_large)."))
            if (path, method) in TOKEN_ROUTES:
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == TOKEN_HEADER for p in parameters):
                    parameters.append(TOKEN_PARAMETER)
                responses.setdefault("400", _error("Missing or malformed contributor token."))
            body_model = REPORT_BODIES.get((path, method))
            if body_model is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{body_model}"}
                        }
                    },
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`fix_openapi`'s version of the app's document at ``/openapi.json``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = fix_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
