"""A document's source file → what its page shows: the body as clean HTML, the event's fields.

The index keeps plain text (for search); the page reads the document's own markdown file again
so that headings, lists, emphasis, quotes, tables and links survive. markdown-it-py renders it
(raw HTML allowed, since the site's files contain some), then ``nh3`` (the Ammonia sanitiser)
keeps only harmless tags and attributes: nothing that can run reaches the page. Kramdown
attribute lists (``{: .citation}``, ``{:target="_blank"}``) are dropped, never shown.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import frontmatter
import nh3
from markdown_it import MarkdownIt

MAX_SOURCE_BYTES = 2_000_000
"""A source file beyond this is not rendered (the plain-text body is shown instead)."""

_IAL = re.compile(r"\{:{1,2}[^}\n]{0,200}?\}")
_md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table")

ALLOWED_TAGS = {
    "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "ul", "ol", "li", "strong", "em", "b", "i",
    "blockquote", "code", "pre", "a", "table", "thead", "tbody", "tr", "th", "td", "caption",
    "sup", "sub", "abbr", "dl", "dt", "dd", "span", "del", "s", "small",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "target", "hreflang"},
    "abbr": {"title"},
    "th": {"scope", "colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "ol": {"start"},
}
_HEADING = re.compile(r"<(/?)h1(\W)")


def _external(href: str, site_host: str) -> bool:
    parsed = urlparse(href)
    return parsed.scheme in ("http", "https") and parsed.hostname not in ("", None, site_host)


def body_html(markdown: str, site_host: str = "") -> str:
    """Markdown (kramdown flavoured) → sanitised HTML; external links open in a new window,
    marked as such (title, and the design system's icon), all links get ``rel="noopener"``."""
    text = _IAL.sub("", markdown or "")
    tokens = _md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                if _external(href, site_host):
                    child.attrSet("target", "_blank")
                    child.attrSet("title", f"{urlparse(href).hostname} - nouvelle fenêtre")
    html = _md.renderer.render(tokens, _md.options, {})
    html = _HEADING.sub(r"<\1h2\2", html)  # the page's title is its only h1
    return nh3.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, link_rel="noopener",
        url_schemes={"http", "https", "mailto", "tel"}, strip_comments=True,
    )


@dataclass
class EventInfo:
    """What an event page shows beside its publication date."""

    start: str = ""
    end: str = ""
    place: str = ""
    address: str = ""
    registration: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.start or self.place or self.address or self.registration or self.details)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip() if value else ""


def _text(value: Any) -> str:
    return str(value).strip()[:500] if isinstance(value, str | int | float) else ""


def event_info(meta: dict[str, Any]) -> EventInfo:
    """The event's own front-matter fields (dates, place, address, registration, details)."""
    info = EventInfo(
        start=_iso(meta.get("event_start_date") or meta.get("event_date")),
        end=_iso(meta.get("event_end_date")),
        place=_text(meta.get("lieu") or meta.get("place")),
        address=_text(meta.get("adresse") or meta.get("address")),
    )
    for key in ("inscription", "lien_inscription", "registration", "registration_url", "lien"):
        value = _text(meta.get(key))
        if value.startswith(("http://", "https://")):
            info.registration = value
            break
    items = meta.get("champs_informations")
    for item in items if isinstance(items, list) else []:  # any other value: no details
        if isinstance(item, dict):
            label, content = _text(item.get("intitule")), _text(item.get("contenu"))
            if label or content:
                info.details.append((label, content))
    return info


@dataclass
class Source:
    """A document's source, read again for its page; empty when the file is gone."""

    body_html: str = ""
    event: EventInfo = field(default_factory=EventInfo)


def read_source(path: str, site_host: str = "") -> Source:
    """Read and render a document's markdown file; any problem gives an empty Source (the page
    then shows the indexed plain text), never an error page."""
    try:
        p = Path(path)
        if not path or not p.is_file() or p.stat().st_size > MAX_SOURCE_BYTES:
            return Source()
        post = frontmatter.loads(p.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a page falls back to the indexed text
        return Source()
    meta = post.metadata if isinstance(post.metadata, dict) else {}
    return Source(body_html=body_html(post.content, site_host), event=event_info(meta))
