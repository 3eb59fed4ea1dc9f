"""The API's documentation pages (``/docs``: Swagger UI, ``/redoc``: ReDoc), served from here.

FastAPI's own pages load their scripts from a CDN and start them with an inline script, which a
strict Content-Security-Policy forbids. These pages are small HTML files with no inline script:
the viewers' files come from the ``fastapi-offline`` package (pinned) and the two lines that
start them from ``service/static``, all under ``/docs/assets/``, with the pages' own CSP (on
``/redoc``, whose viewer writes its own ``<style>`` elements, those carry a per-response nonce
that the CSP names; scripts are never relaxed). The browser fetches nothing from another host.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from service.routes.pages import CSP, STATIC_DIR

VIEWERS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (VIEWERS_DIR / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": (VIEWERS_DIR / "swagger-ui.css", "text/css; charset=utf-8"),
    "redoc.standalone.js": (VIEWERS_DIR / "redoc.standalone.js", "text/javascript; charset=utf-8"),
    "favicon.png": (VIEWERS_DIR / "favicon.png", "image/png"),
    "swagger-init.js": (STATIC_DIR / "apidocs-swagger.js", "text/javascript; charset=utf-8"),
    "redoc-init.js": (STATIC_DIR / "apidocs-redoc.js", "text/javascript; charset=utf-8"),
}
"""The only files served under ``/docs/assets/``, by name (no path is ever joined)."""

PAGE = """<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/docs/assets/favicon.png">
{head}
</head>
<body>
<div id="{root}" data-openapi="{openapi}" data-nonce="{nonce}"></div>
<script src="/docs/assets/{viewer}"></script>
<script src="/docs/assets/{init}"></script>
</body>
</html>
"""
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}


def redoc_csp(nonce: str) -> str:
    """The pages' CSP, with the style elements of one response allowed by their nonce."""
    return CSP.replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")


def add_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Mount ``/docs``, ``/redoc`` and their assets on ``app`` (created with ``docs_url=None``
    and ``redoc_url=None``)."""
    title = f"{app.title} — API"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(PAGE.format(
            title=title, root="swagger-ui", openapi=openapi_url, viewer="swagger-ui-bundle.js",
            init="swagger-init.js", nonce="",
            head='<link rel="stylesheet" href="/docs/assets/swagger-ui.css">',
        ), headers=HEADERS)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        # ReDoc styles itself with <style> elements it writes (styled-components): they carry
        # this response's nonce, the one exception to the pages' CSP. Scripts stay 'self' only.
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(PAGE.format(
            title=title, root="redoc", openapi=openapi_url, viewer="redoc.standalone.js",
            init="redoc-init.js", head="", nonce=nonce,
        ), headers={**HEADERS, "Content-Security-Policy": redoc_csp(nonce)})

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        found = ASSETS.get(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no such asset: {name[:100]!r}")
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={
            "Content-Security-Policy": CSP, "Cache-Control": "public, max-age=86400"})
