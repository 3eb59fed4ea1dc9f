"""Server-rendered pages (French UI): search, document, tag editor, archives.

The pages call the same core as the API (``ctx.search``) and hold no search logic of their own:
this module only reads the query string leniently (a page never answers 422), builds the
:class:`~indexer.search.SearchRequest`, and hands the result to Jinja2 templates (autoescape on).
The browser scripts in ``service/static`` only enhance the pages: everything works without
JavaScript except the tag editor, which needs the tag API.

Every page and static file carries a strict Content-Security-Policy: no inline script or style
anywhere. ``title_html`` / ``snippet_html`` are the only markup inserted as such, because the
core escapes the document text before adding its ``<mark>`` tags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse
from xml.sax.saxutils import escape as xml_escape

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from indexer.examples import syntax_examples
from indexer.ids import ID_MAX
from indexer.query import MAX_QUERY_LENGTH, QueryError
from indexer.search import MAX_WINDOW, SearchError, SearchRequest, SearchResult, year_label
from models.vocabulary import tag_key as plain_tag_key
from service.auth import (
    ANONYMOUS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Viewer,
    identify,
    role_for_key,
    session_token,
)
from service.context import AppContext, get_context
from service.markup import read_source

SERVICE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = SERVICE_DIR / "templates"
STATIC_DIR = SERVICE_DIR / "static"
DSFR_DIR = Path(os.environ.get("COMMUNIQUES_DSFR_DIR")
                or SERVICE_DIR.parent / "node_modules" / "@gouvfr" / "dsfr" / "dist")
"""The State design system's files (npm ``@gouvfr/dsfr``, installed by ``npm ci``), served
by the service itself under ``/dsfr/``: no CDN, so the strict CSP holds."""
DEFAULT_SITE_URL = "https://www.numerique.gouv.fr"
"""Where the documents are published, for links and canonical URLs (``COMMUNIQUES_SITE_URL``)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}

PAGE_SIZE = 10
ARCHIVE_PAGE_SIZE = 20
TAG_FACETS_SHOWN = 8
SORT_LABELS = {"relevance": "Pertinence", "-date": "Plus récents d’abord", "date": "Plus anciens d’abord"}
COLLECTION_LABELS = {
    "communiques": "Communiqués de presse",
    "actualites": "Actualités",
    "evenements": "Événements",
}
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre")
_COLLECTION = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,49}$")
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]*\.(?:js|css)$")
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
DSFR_TYPES = {
    ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".woff2": "font/woff2", ".woff": "font/woff", ".svg": "image/svg+xml", ".png": "image/png",
    ".ico": "image/x-icon", ".webmanifest": "application/manifest+json",
}
_DSFR_PATH = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.\-]*/)*[A-Za-z0-9][A-Za-z0-9_.\-]*$")

router = APIRouter(include_in_schema=False)

Ctx = Annotated[AppContext, Depends(get_context)]


def tag_key(ctx: AppContext, raw: str) -> str:
    """The vocabulary's key for a raw tag (aliases included): the value the tag facets carry."""
    try:
        return ctx.search.vocabulary.key(raw)
    except AttributeError:  # a core without the vocabulary property: the same key, minus aliases
        return plain_tag_key(raw)


# --- template helpers ------------------------------------------------------------------------


def french_date(value: str) -> str:
    """``2023-11-07T10:00:00+01:00`` → ``7 novembre 2023`` (``1er`` for the first); a
    document without a date shows « sans date »."""
    if not value:
        return "sans date"
    try:
        day = dt.date.fromisoformat(value[:10])
    except (TypeError, ValueError):
        return value or ""
    return f"{'1er' if day.day == 1 else day.day} {MONTHS[day.month - 1]} {day.year}"


def file_size(size: int) -> str:
    """``123456`` → ``121 Ko``, ``2500000`` → ``2,4 Mo`` (as French sites write sizes)."""
    if size < 1024:
        return f"{size} o"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} Ko"
    return f"{size / 1024 / 1024:.1f} Mo".replace(".", ",")


def file_name(path: str) -> str:
    """``/uploads/Dossier%20presse.pdf`` → ``Dossier presse.pdf``."""
    return unquote(path.rstrip("/").rsplit("/", 1)[-1]) or path


def collection_label(value: str) -> str:
    return COLLECTION_LABELS.get(value, value)


def french_datetime(value: str) -> str:
    """``2024-06-06T09:30:00+02:00`` → ``6 juin 2024 à 9 h 30`` (the day alone at midnight)."""
    day = french_date(value)
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return day
    if len(value) <= 10 or (moment.hour, moment.minute) == (0, 0):
        return day
    return f"{day} à {moment.hour} h {moment.minute:02d}" if moment.minute else f"{day} à {moment.hour} h"


def site_url() -> str:
    return (os.environ.get("COMMUNIQUES_SITE_URL") or DEFAULT_SITE_URL).rstrip("/")


def public_link(url: str) -> str:
    """A document's or attachment's address on the public site, absolute."""
    if re.match(r"^https?://", url or ""):
        return url
    if not url:
        return ""
    return site_url() + ("" if url.startswith("/") else "/") + url


def dsfr_url(name: str) -> str:
    return f"/dsfr/{name}"


def paragraphs(text: str) -> list[str]:
    """Body text (blank-line separated) → paragraphs, single newlines kept as spaces."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text or "") if p.strip()]


def _static_version(name: str) -> str:
    try:
        return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


_VERSIONS: dict[str, str] = {}


def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>`` so a changed file is never served from cache."""
    if name not in _VERSIONS:
        _VERSIONS[name] = _static_version(name)
    return f"/static/{name}?v={_VERSIONS[name]}"


env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
env.filters["french_date"] = french_date
env.filters["collection_label"] = collection_label
env.filters["file_size"] = file_size
env.filters["file_name"] = file_name
env.filters["french_datetime"] = french_datetime
env.globals["static_url"] = static_url
env.globals["dsfr_url"] = dsfr_url
env.globals["SORT_LABELS"] = SORT_LABELS
templates = Jinja2Templates(env=env)


def page_viewer(request: Request) -> Viewer:
    """Who is looking at a page: a page never answers 401, a wrong key just sees the public."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is None:
        try:
            viewer = identify(request, request.app.state.ctx.settings)
        except HTTPException:
            viewer = ANONYMOUS
        request.state.viewer = viewer
    return viewer


PageViewer = Annotated[Viewer, Depends(page_viewer)]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("page_title", "")
    context.setdefault("section", "")
    settings = request.app.state.ctx.settings
    context.setdefault("viewer", page_viewer(request))
    context.setdefault("signin_enabled", bool(settings.api_key or settings.read_key))
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=PAGE_HEADERS
    )


# --- the query string, read leniently --------------------------------------------------------


@dataclass
class PageQuery:
    """The search state of a page, as in its URL: ``/?q=…&tag=…&sort=…&page=…``."""

    q: str = ""
    tags: list[str] = field(default_factory=list)
    collection: str = ""
    category: str = ""
    year: str = ""
    date_from: str = ""
    date_to: str = ""
    sort: str = "relevance"
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, request: Request, ctx: AppContext) -> PageQuery:
        qp = request.query_params
        pq = cls()
        pq.q = qp.get("q", "")
        if len(pq.q) > MAX_QUERY_LENGTH:
            pq.errors.append(f"La requête est trop longue : elle a été coupée à {MAX_QUERY_LENGTH} caractères.")
            pq.q = pq.q[:MAX_QUERY_LENGTH]
        # Tags are kept as the vocabulary's keys: the facets' values, whatever variant was typed.
        seen: list[str] = []
        for raw in qp.getlist("tag")[:20]:
            key = tag_key(ctx, raw[:200]) if raw.strip() else ""
            if key and key not in seen:
                seen.append(key)
        pq.tags = seen
        collection = qp.get("collection", "").strip()
        if collection and _COLLECTION.match(collection):
            pq.collection = collection
        pq.category = qp.get("category", "").strip()[:200]
        year = qp.get("year", "").strip()
        if year:
            if year == "0" or (year.isdigit() and 1 <= int(year) <= 9999):
                pq.year = year
            else:
                pq.errors.append(f"Année ignorée : « {year[:20]} » n’est pas une année valide.")
        for name, label in (("date_from", "Date de début"), ("date_to", "Date de fin")):
            value = qp.get(name, "").strip()
            if not value:
                continue
            try:
                setattr(pq, name, dt.date.fromisoformat(value).isoformat())
            except ValueError:
                pq.errors.append(f"{label} ignorée : « {value[:20]} » n’est pas une date (AAAA-MM-JJ).")
        sort = qp.get("sort", "relevance")
        pq.sort = sort if sort in SORT_LABELS else "relevance"
        page = qp.get("page", "1").strip()
        pq.page = int(page) if page.isdigit() and 0 < int(page) <= 10_000 else 1
        return pq

    @property
    def has_criteria(self) -> bool:
        return bool(self.q.strip() or self.tags or self.collection or self.category or self.year
                    or self.date_from or self.date_to)

    def request(self, size: int, drafts: bool = False) -> SearchRequest:
        return SearchRequest(
            q=self.q, page=self.page, size=size, sort=self.sort, tags=list(self.tags),
            drafts=drafts,
            collection=self.collection or None, category=self.category or None,
            date_from=dt.date.fromisoformat(self.date_from) if self.date_from else None,
            date_to=dt.date.fromisoformat(self.date_to) if self.date_to else None,
            year=int(self.year) if self.year else None,
        )

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The URL parameters, with some changed; the page goes back to 1 unless given."""
        state: dict[str, Any] = {
            "q": self.q, "tag": list(self.tags), "collection": self.collection,
            "category": self.category, "year": self.year, "date_from": self.date_from,
            "date_to": self.date_to, "sort": self.sort, "page": 1,
        }
        state.update(changes)
        out: list[tuple[str, str]] = []
        for name in ("q", "tag", "collection", "category", "year", "date_from", "date_to",
                     "sort", "page"):
            value = state[name]
            if name == "tag":
                out += [("tag", t) for t in value]
            elif (name, value) == ("sort", "relevance") or (name == "page" and int(value) <= 1):
                continue
            elif value not in ("", None):
                out.append((name, str(value)))
        return out

    def url(self, base: str, **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"{base}?{query}" if query else base


def run_search(ctx: AppContext, pq: PageQuery, size: int,
               drafts: bool = False) -> tuple[SearchResult | None, str]:
    """The core's search, or the reason it refused the request (shown on the page)."""
    if pq.page * size > MAX_WINDOW:
        pq.page = MAX_WINDOW // size
    if pq.date_from and pq.date_to and pq.date_from > pq.date_to:
        return None, (f"la date de début ({french_date(pq.date_from)}) est postérieure à la date "
                      f"de fin ({french_date(pq.date_to)}). Inversez-les ou corrigez l’une "
                      "des deux.")
    try:
        return ctx.search.search(pq.request(size, drafts)), ""
    except (QueryError, SearchError) as exc:
        return None, str(exc)


def page_numbers(current: int, last: int) -> list[int | None]:
    """1 … 4 5 [6] 7 8 … 20 (None is a gap); the browser script uses the same rule."""
    if last <= 7:
        return list(range(1, last + 1))
    keep = {1, last, *range(max(1, current - 2), min(last, current + 2) + 1)}
    out: list[int | None] = []
    prev = 0
    for n in sorted(keep):
        if n - prev > 1:
            out.append(None)
        out.append(n)
        prev = n
    return out


def results_context(base: str, pq: PageQuery, result: SearchResult | None, size: int) -> dict[str, Any]:
    """What the results, facets and pagination partials need, links included."""
    if result is None:
        return {"result": None, "facets": {}, "active_filters": [], "pagination": None,
                "past_last": None}
    labels = {f.value: f.label for f in result.facets.get("tag", [])}
    facets: dict[str, list[dict[str, Any]]] = {}
    for name, values in result.facets.items():
        items = []
        for f in values:
            if name == "tag":
                active = f.value in pq.tags
                tags = [t for t in pq.tags if t != f.value] if active else [*pq.tags, f.value]
                href = pq.url(base, tag=tags)
                label = f.label
            else:
                current = pq.collection if name == "collection" else pq.year
                active = current == f.value
                href = pq.url(base, **{name: "" if active else f.value})
                label = collection_label(f.label) if name == "collection" else f.label
            items.append({"value": f.value, "label": label, "count": f.count,
                          "active": active, "href": href})
        if name == "tag":  # an active tag stays in sight, never folded away under "more"
            items.sort(key=lambda item: not item["active"])
        facets[name] = items
    active_filters = [
        {"kind": "Étiquette", "label": labels.get(t, t),
         "href": pq.url(base, tag=[x for x in pq.tags if x != t])}
        for t in pq.tags
    ]
    if pq.collection:
        active_filters.append({"kind": "Collection", "label": collection_label(pq.collection),
                               "href": pq.url(base, collection="")})
    if pq.year:
        active_filters.append({"kind": "Année", "label": year_label(pq.year),
                               "href": pq.url(base, year="")})
    if pq.category:
        active_filters.append({"kind": "Catégorie", "label": pq.category,
                               "href": pq.url(base, category="")})
    if pq.date_from:
        active_filters.append({"kind": "Depuis le", "label": french_date(pq.date_from),
                               "href": pq.url(base, date_from="")})
    if pq.date_to:
        active_filters.append({"kind": "Jusqu’au", "label": french_date(pq.date_to),
                               "href": pq.url(base, date_to="")})
    last = max(1, min(math.ceil(result.total / size), MAX_WINDOW // size))
    pagination = None
    if last > 1:
        pagination = {
            "current": pq.page, "last": last,
            "prev": pq.url(base, page=pq.page - 1) if pq.page > 1 else "",
            "next": pq.url(base, page=pq.page + 1) if pq.page < last else "",
            "pages": [(n, pq.url(base, page=n) if n else "") for n in page_numbers(pq.page, last)],
        }
    past_last = None
    if result.total and not result.hits and pq.page > last:
        past_last = {"page": pq.page, "last": last, "href": pq.url(base, page=last)}
    return {"result": result, "facets": facets, "active_filters": active_filters,
            "pagination": pagination, "past_last": past_last}


def count_text(total: int, q: str) -> str:
    """« 12 résultats pour « cloud » » (« 66 documents » without words); the script says the same."""
    n = f"{total:,}".replace(",", "\u202f")
    if q.strip():
        head = ("Aucun résultat" if total == 0 else "1 résultat" if total == 1
                else f"{n} résultats")
        return f"{head} pour « {q.strip()} »"
    return "Aucun document" if total == 0 else "1 document" if total == 1 else f"{n} documents"


# --- pages -----------------------------------------------------------------------------------


def search_context(request: Request, ctx: AppContext, viewer: Viewer) -> dict[str, Any]:
    """Everything the search page and its fragment show, from the URL."""
    pq = PageQuery.read(request, ctx)
    result, error = run_search(ctx, pq, PAGE_SIZE, viewer.drafts)
    return dict(
        pq=pq, error=error, size=PAGE_SIZE, base="/",
        count=count_text(result.total, pq.q) if result else "",
        tag_facets_shown=TAG_FACETS_SHOWN,
        **results_context("/", pq, result, PAGE_SIZE),
    )


@router.get("/fragments/recherche", response_class=HTMLResponse)
def search_fragment(request: Request, ctx: Ctx, viewer: PageViewer) -> HTMLResponse:
    """The search page's results, facets, filters and pagination alone, rendered by the same
    partials as the page: the browser script swaps them in as the visitor types."""
    context = search_context(request, ctx, viewer)
    return render(request, "_search_fragment.html",
                  status_code=400 if context["error"] else 200, **context)


@router.get("/", response_class=HTMLResponse)
def search_page(request: Request, ctx: Ctx, viewer: PageViewer) -> HTMLResponse:
    """The search box: results rendered here for the no-JS form, then updated as you type."""
    context = search_context(request, ctx, viewer)
    pq = context["pq"]
    return render(
        request, "search.html", status_code=400 if context["error"] else 200, section="search",
        page_title=f"{pq.q.strip()} — Recherche" if pq.q.strip() else "Recherche",
        **context,
    )


@router.get("/documents/{doc_id}", response_class=HTMLResponse)
def document_page(doc_id: str, request: Request, ctx: Ctx, viewer: PageViewer) -> HTMLResponse:
    doc = ctx.search.document(doc_id, drafts=viewer.drafts) if len(doc_id) <= ID_MAX else None
    if doc is None:
        return render(request, "not_found.html", status_code=404,
                      page_title="Document introuvable", doc_id=doc_id[:ID_MAX])
    similar = ctx.search.similar(doc_id, limit=5, drafts=viewer.drafts) or []
    public_url = public_link(doc.get("url", ""))
    source = read_source(ctx.search.source_file(doc_id, drafts=viewer.drafts) or "",
                         urlparse(site_url()).hostname or "")
    attachments = [
        {**a, "href": public_link(a.get("url") or a.get("path", "")),
         "format": a.get("type") or Path(a.get("path", "")).suffix.lstrip(".").upper()}
        for a in doc.get("attachments", [])
    ]
    return render(
        request, "document.html", section="search", page_title=doc["title"], doc=doc,
        body=paragraphs(doc["body"]), body_html=source.body_html, event=source.event,
        attachments=attachments, canonical=public_url if doc.get("published", True) else "",
        similar=similar, public_url=public_url,
        tag_links=[(t, "/?" + urlencode([("tag", tag_key(ctx, t))]))
                   for t in doc.get("tags_canonical") or doc["tags"]],
    )


@router.get("/editeur", response_class=HTMLResponse)
def editor_page(request: Request) -> HTMLResponse:
    return render(request, "editor.html", section="editor", page_title="Suggestion d’étiquettes",
                  title="", text="", notice="")


@router.post("/editeur", response_class=HTMLResponse)
async def editor_without_script(request: Request) -> HTMLResponse:
    """The editor form sent without JavaScript: keep the text and say what is needed."""
    raw = await request.body()
    fields = parse_qs(raw[:1_000_000].decode("utf-8", "replace")) if raw else {}
    return render(
        request, "editor.html", section="editor", page_title="Suggestion d’étiquettes",
        title=fields.get("title", [""])[0], text=fields.get("text", [""])[0],
        notice="Les suggestions d’étiquettes ont besoin de JavaScript : activez-le puis "
               "cliquez à nouveau sur « Suggérer des étiquettes ». Votre texte a été conservé.",
    )


@router.get("/archives", response_class=HTMLResponse)
def archives_page(request: Request, ctx: Ctx, viewer: PageViewer) -> HTMLResponse:
    """Archivist syntax explained, date range and sort, results, and export of every match."""
    pq = PageQuery.read(request, ctx)
    result, error = (None, "")
    if pq.has_criteria:
        result, error = run_search(ctx, pq, ARCHIVE_PAGE_SIZE, viewer.drafts)
    # The site's collections, plus any other the current result or selection names.
    collections = list(COLLECTION_LABELS)
    found = [f.value for f in result.facets.get("collection", [])] if result else []
    for extra in [*found, pq.collection]:
        if extra and extra not in collections:
            collections.append(extra)
    export_params = [(k, v) for k, v in pq.params() if k != "page"]
    exports = {
        fmt: "/api/export?" + urlencode([*export_params, ("format", fmt)])
        for fmt in ("csv", "csv-excel", "xlsx", "jsonl")
    }
    return render(
        request, "archives.html", status_code=400 if error else 200, section="archives",
        page_title=f"{pq.q.strip()} — Archives" if pq.q.strip() else "Recherche avancée",
        pq=pq, error=error, size=ARCHIVE_PAGE_SIZE, base="/archives", collections=collections,
        count=count_text(result.total, pq.q) if result else "", exports=exports,
        tag_facets_shown=TAG_FACETS_SHOWN, examples=syntax_examples(ctx.search),
        **results_context("/archives", pq, result, ARCHIVE_PAGE_SIZE),
    )


# --- signing in: a key becomes a session cookie --------------------------------------------------


def _next_path(value: str) -> str:
    """Where to go after signing in or out: a path of this site only (never another host)."""
    value = (value or "").strip()
    if not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    return value


@router.get("/connexion", response_class=HTMLResponse)
def signin_page(request: Request) -> HTMLResponse:
    """Archivists and editors sign in with their key; the public never needs to."""
    return render(request, "signin.html", page_title="Connexion", error="",
                  next=_next_path(request.query_params.get("next", "/")))


@router.post("/connexion", response_class=HTMLResponse)
async def signin(request: Request, ctx: Ctx) -> Response:
    """Check the key (form field ``key``) and set the signed session cookie; the key itself is
    never stored in the browser nor put in a URL."""
    raw = await request.body()
    fields = parse_qs(raw[:10_000].decode("utf-8", "replace")) if raw else {}
    key = fields.get("key", [""])[0].strip()
    target = _next_path(fields.get("next", ["/"])[0])
    role = role_for_key(ctx.settings, key) if key else None
    if role is None:
        error = ("La connexion n’est pas activée sur ce service."
                 if not (ctx.settings.api_key or ctx.settings.read_key)
                 else "Cette clé n’est pas reconnue. Vérifiez-la et réessayez.")
        return render(request, "signin.html", status_code=401, page_title="Connexion",
                      error=error, next=target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_token(ctx.settings, role), max_age=SESSION_SECONDS,
        path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return response


@router.post("/deconnexion")
def signout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


@router.get("/sitemap.xml")
def sitemap(request: Request, ctx: Ctx) -> Response:
    """The published documents' pages, for search engines (never a draft)."""
    base = str(request.base_url).rstrip("/")
    rows = []
    for rec in ctx.search.export(SearchRequest(sort="-date")):
        loc = f"{base}/documents/{quote(rec['id'])}"
        lastmod = f"<lastmod>{xml_escape(rec['date'][:10])}</lastmod>" if rec.get("date") else ""
        rows.append(f"<url><loc>{xml_escape(loc)}</loc>{lastmod}</url>")
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(rows) + "</urlset>\n")
    return Response(body, media_type="application/xml")


# --- the footer's mandatory pages, the plan, OpenSearch ------------------------------------------

INFO_PAGES = {
    "/accessibilite": ("accessibilite.html", "Déclaration d’accessibilité"),
    "/mentions-legales": ("mentions_legales.html", "Mentions légales"),
    "/donnees-personnelles": ("donnees_personnelles.html", "Données personnelles"),
    "/plan-du-site": ("plan_du_site.html", "Plan du site"),
}


def _info_page(path: str):  # noqa: ANN202 - a route handler made per page
    name, title = INFO_PAGES[path]

    def page(request: Request) -> HTMLResponse:
        return render(request, name, page_title=title, section="info")

    page.__name__ = "info_" + name.removesuffix(".html")
    return page


for _path in INFO_PAGES:
    router.add_api_route(_path, _info_page(_path), methods=["GET"], response_class=HTMLResponse)


@router.get("/opensearch.xml")
def opensearch(request: Request) -> Response:
    """OpenSearch description: browsers offer to add the site's search."""
    base = str(request.base_url).rstrip("/")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OpenSearchDescription xmlns="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:moz="http://www.mozilla.org/2006/browser/search/">'
        "<ShortName>Communiqués</ShortName>"
        "<Description>Communiqués de presse et actualités de l’État</Description>"
        "<InputEncoding>UTF-8</InputEncoding><Language>fr-FR</Language>"
        f'<Image height="16" width="16" type="image/x-icon">{xml_escape(base)}/dsfr/favicon/favicon.ico</Image>'
        f'<Url type="text/html" method="get" template="{xml_escape(base)}/?q={{searchTerms}}"/>'
        f"<moz:SearchForm>{xml_escape(base)}/</moz:SearchForm>"
        "</OpenSearchDescription>\n"
    )
    return Response(body, media_type="application/opensearchdescription+xml")


@router.get("/dsfr/{path:path}")
def dsfr_file(path: str) -> Response:
    """The design system's CSS, scripts, fonts and icons, from the installed npm package."""
    target = DSFR_DIR / path
    if (not _DSFR_PATH.match(path) or ".." in path or target.suffix not in DSFR_TYPES
            or not target.is_file()):
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(
        target, media_type=DSFR_TYPES[target.suffix],
        headers={"Content-Security-Policy": CSP, "Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The pages' own scripts and styles (no directory listing, no other files)."""
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(
        path, media_type=STATIC_TYPES[path.suffix],
        headers={"Content-Security-Policy": CSP, "Cache-Control": "public, max-age=3600"},
    )
