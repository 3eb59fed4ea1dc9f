"""Small HTTP rules applied to every answer: ``HEAD`` like ``GET``, redirects kept on-site.

* ``HEAD`` of any page or API route answers what ``GET`` would (status and headers) without a
  body; the routes are declared for ``GET`` only.
* Every redirect is relative: a ``Location`` built from the request's ``Host`` header (trailing
  slash redirects, for one) would otherwise send a visitor to whatever host the request named
  (``Host: evil.example`` → ``Location: http://evil.example/...``). The service never
  redirects to another site, so the scheme and host of any ``Location`` are dropped.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from service.limits import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    """Answer ``HEAD`` as ``GET`` would, with the body left out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def relative_location(value: str) -> str:
    """``http://any.host/a/b?c`` → ``/a/b?c``; already relative values are kept (``//host/x``,
    which browsers read as another host, becomes ``/x``)."""
    parts = urlsplit(value)
    if not (parts.scheme or parts.netloc) and not value.startswith(("//", "/\\", "\\")):
        return value
    path = "/" + parts.path.lstrip("/\\")
    return path + (f"?{parts.query}" if parts.query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")


class RelativeRedirectMiddleware:
    """Rewrite any ``Location`` header to a path on this site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def on_site(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, relative_location(v.decode("latin-1")).encode("latin-1")
                     if k.lower() == b"location" else v)
                    for k, v in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, on_site)
