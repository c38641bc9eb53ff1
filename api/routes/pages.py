"""HTML pages the API server serves besides the web app's ``/``: the API docs and the
operator dashboard.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the pinned npm
packages (``frontend/package.json``: ``swagger-ui-dist`` under ``/static/node_modules/``,
``redoc``'s bundle at ``/docs/redoc.standalone.js`` with its one CDN address, a logo,
pointed at our icon), never from a CDN, so they work with no network. Swagger UI's start-up
script is a file (``/static/docs/swagger-init.js``), not inline, so the page runs under a
CSP without ``'unsafe-inline'``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.exceptions import HTTPException

from api.deps import State
from correspondance.settings import REPO_ROOT

router = APIRouter(include_in_schema=False)

NODE_MODULES = "/static/node_modules"
SWAGGER_JS = f"{NODE_MODULES}/swagger-ui-dist/swagger-ui-bundle.js"
SWAGGER_CSS = f"{NODE_MODULES}/swagger-ui-dist/swagger-ui.css"
SWAGGER_INIT = "/static/docs/swagger-init.js"
REDOC_JS = "/docs/redoc.standalone.js"
REDOC_BUNDLE = "node_modules/redoc/bundles/redoc.standalone.js"  # under the frontend folder
# The one address ReDoc's bundle fetches by itself (its "API docs by Redocly" logo): pointed
# at our own icon so that the page makes no request off the server.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
FAVICON = "/static/favicon.svg"
_INLINE_SCRIPT = re.compile(r"<script>.*?</script>", re.DOTALL)


def _openapi_url(request: Request) -> str:
    url = request.app.openapi_url
    if not url:
        raise HTTPException(404, "this server publishes no OpenAPI document")
    return str(url)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, with its assets from ``swagger-ui-dist``."""
    page = get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} — API",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=FAVICON,
    )
    html = bytes(page.body).decode()
    # FastAPI inlines the SwaggerUIBundle(...) call; the same call lives in a static file
    # (it reads the document's URL from data-openapi-url), so no inline script is needed.
    html, inlined = _INLINE_SCRIPT.subn(
        f'<script src="{SWAGGER_INIT}" data-openapi-url="{_openapi_url(request)}"></script>',
        html,
    )
    if inlined != 1:  # a FastAPI upgrade changed the page: fail loudly, not with a blank page
        raise RuntimeError(f"expected one inline script in Swagger UI's page, found {inlined}")
    return HTMLResponse(html)


@functools.cache
def _redoc_bundle(path: Path, mtime_ns: int) -> bytes:
    return path.read_bytes().replace(REDOC_LOGO, FAVICON.encode())


@router.get("/docs/redoc.standalone.js")
async def redoc_bundle(state: State) -> Response:
    """The pinned ``redoc`` package's standalone bundle, with its logo from this server."""
    path = state.settings.frontend_dir / REDOC_BUNDLE
    if not path.is_file():
        raise HTTPException(404, "the redoc package is not installed (npm ci --prefix frontend)")
    return Response(
        _redoc_bundle(path, path.stat().st_mtime_ns), media_type="text/javascript; charset=utf-8"
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc over ``/openapi.json``, from the ``redoc`` package's standalone bundle."""
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} — API",
        redoc_js_url=REDOC_JS,
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    )


@router.get("/operator")
async def operator_dashboard(state: State) -> FileResponse:
    """The operator dashboard (``frontend/operator.html``)."""
    page = state.settings.frontend_dir / "operator.html"
    if not page.is_file():
        raise HTTPException(404, f"the dashboard is not installed ({page.name} is missing)")
    return FileResponse(page)


@router.get("/dashboard")
async def dashboard_alias() -> RedirectResponse:
    """``/dashboard`` is another name of ``/operator``."""
    return RedirectResponse("/operator", status_code=308)


@router.get("/privacy")
async def privacy() -> PlainTextResponse:
    """``PRIVACY.md``: what is kept about contributors and travellers, and for how long
    (linked from the reporting app's "My reports")."""
    page = REPO_ROOT / "PRIVACY.md"
    if not page.is_file():
        raise HTTPException(404, "PRIVACY.md is not installed with this server")
    return PlainTextResponse(page.read_text(encoding="utf-8"))
