"""Who is asking: an anonymous visitor, a reader (archivist) or a writer (editor).

The public site search must never show a draft (``published: false``: an unannounced press
release), while archivists and editors need them. Two keys, set by the operator:

* ``COMMUNIQUES_READ_KEY`` — readers: drafts are visible to them (search, documents, export,
  statistics, similar documents, tag lists);
* ``COMMUNIQUES_API_KEY`` — writers: everything a reader sees, plus what changes the index or
  what the tag model learns (document writes, tag feedback).

A key is sent as ``Authorization: Bearer <key>`` by programs, or exchanged once on the sign-in
page (``/connexion``) for a signed session cookie (HttpOnly, ``SameSite=Strict``, ``Secure`` when
served over HTTPS), so that a key never travels in a URL. The cookie names the role, not the key;
it is signed with a secret derived from both keys, so changing a key signs every session out.

Cross-site requests: a state-changing request whose ``Origin`` is neither the service's own nor
one the operator listed (``COMMUNIQUES_SITE_ORIGIN``) is refused (403) by
:class:`OriginCheckMiddleware`, and the JSON endpoints refuse other content types (415), so a
foreign page cannot make a signed-in browser post a form to them.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from service.context import AppContext, Settings, get_context
from service.limits import WRITE_METHODS, ASGIApp, Receive, Scope, Send, send_json

SESSION_COOKIE = "communiques_session"
SESSION_SECONDS = 12 * 3600
"""A signed-in session lasts a working day."""


class Role(enum.IntEnum):
    ANONYMOUS = 0
    READER = 1
    WRITER = 2


ROLE_NAMES = {Role.ANONYMOUS: "anonymous", Role.READER: "reader", Role.WRITER: "writer"}


@dataclass(frozen=True)
class Viewer:
    """The caller of one request, and what it may see."""

    role: Role = Role.ANONYMOUS
    via: str = ""
    """``header`` (a key in ``Authorization``), ``cookie`` (a signed-in session) or empty."""

    @property
    def drafts(self) -> bool:
        """Drafts (``published: false``) are shown to readers and writers only."""
        return self.role >= Role.READER

    @property
    def can_write(self) -> bool:
        return self.role >= Role.WRITER

    @property
    def name(self) -> str:
        return ROLE_NAMES[self.role]


ANONYMOUS = Viewer()


def role_for_key(settings: Settings, given: str) -> Role | None:
    """The role a key grants, or None; compared in constant time against both keys."""
    given_b = given.encode()
    found: Role | None = None
    # Both comparisons always run: the time taken says nothing about which key was close.
    for key, role in ((settings.api_key, Role.WRITER), (settings.read_key, Role.READER)):
        if key and hmac.compare_digest(given_b, key.encode()) and found is None:
            found = role
    return found


def _serializer(settings: Settings) -> URLSafeTimedSerializer | None:
    if not (settings.api_key or settings.read_key):
        return None
    secret = hashlib.sha256(
        b"communiques-session\0" + settings.api_key.encode() + b"\0" + settings.read_key.encode()
    ).hexdigest()
    return URLSafeTimedSerializer(secret, salt="session")


def session_token(settings: Settings, role: Role) -> str:
    """The signed cookie value for a session of ``role``."""
    serializer = _serializer(settings)
    if serializer is None:
        raise ValueError("no key configured: there is nothing to sign in to")
    return serializer.dumps({"role": ROLE_NAMES[role]})


def role_from_session(settings: Settings, token: str) -> Role | None:
    serializer = _serializer(settings)
    if serializer is None or not token:
        return None
    try:
        data = serializer.loads(token, max_age=SESSION_SECONDS)
    except BadSignature:  # expired, tampered with, or signed with an older key
        return None
    names = {v: k for k, v in ROLE_NAMES.items()}
    role = names.get(data.get("role")) if isinstance(data, dict) else None
    if role is Role.WRITER and not settings.api_key or role is Role.READER and not settings.read_key:
        return None
    return role


def bearer(request: Request) -> str | None:
    """The key of an ``Authorization: Bearer`` header; None when there is no such header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def identify(request: Request, settings: Settings) -> Viewer:
    """The caller: a key in the header wins over a session cookie. A wrong key is a 401
    (a program sending a stale key should hear so, not silently see less)."""
    given = bearer(request)
    if given is not None:
        role = role_for_key(settings, given)
        if role is None:
            raise HTTPException(
                status_code=401, detail="missing or wrong API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Viewer(role, "header")
    role = role_from_session(settings, request.cookies.get(SESSION_COOKIE, ""))
    if role is not None:
        return Viewer(role, "cookie")
    return ANONYMOUS


def get_viewer(request: Request, ctx: Annotated[AppContext, Depends(get_context)]) -> Viewer:
    """FastAPI dependency: who is asking (anonymous when no credential is given)."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is None:
        viewer = identify(request, ctx.settings)
        request.state.viewer = viewer
    return viewer


def require_writer(
    viewer: Annotated[Viewer, Depends(get_viewer)],
    ctx: Annotated[AppContext, Depends(get_context)],
) -> Viewer:
    """Writes and what the tag model learns: the writer's key (header or session)."""
    if not ctx.settings.api_key:
        raise HTTPException(status_code=403, detail="writes are disabled: no API key configured")
    if viewer.role is Role.ANONYMOUS:
        raise HTTPException(
            status_code=401, detail="missing or wrong API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not viewer.can_write:
        raise HTTPException(status_code=403, detail="this key may read, not write")
    return viewer


Caller = Annotated[Viewer, Depends(get_viewer)]
Writer = Annotated[Viewer, Depends(require_writer)]


def require_json(request: Request) -> None:
    """415 unless the body is declared ``application/json``: a cross-site HTML form can only
    send form or text bodies, so JSON-only endpoints cannot be posted to from another site."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type: expected application/json, got {media or 'none'!r}",
        )


def allowed_origins(settings: Settings) -> set[str]:
    return {o.strip().rstrip("/").lower() for o in settings.site_origin.split(",") if o.strip()}


class OriginCheckMiddleware:
    """403 for a state-changing request sent from another site's page.

    Browsers add ``Origin`` to cross-site and same-site POST/PUT/DELETE requests; programs
    usually send none, and are let through (they authenticate with a key). An ``Origin`` is
    accepted when it is the service's own (scheme and ``Host`` of the request) or listed in
    ``COMMUNIQUES_SITE_ORIGIN``.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.extra = allowed_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") in WRITE_METHODS:
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin", b"").decode("latin-1").strip().rstrip("/").lower()
            if origin:
                host = headers.get(b"host", b"").decode("latin-1").strip().lower()
                own = f"{scope.get('scheme', 'http')}://{host}"
                if origin != own and origin not in self.extra:
                    await send_json(send, 403, {
                        "detail": f"Origin: {origin[:100]!r} may not send this request "
                                  "(only the service's own pages and the configured origins)"})
                    return
        await self.app(scope, receive, send)
