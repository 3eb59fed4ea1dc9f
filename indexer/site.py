"""A Jekyll site checkout as input: its collections, its permalinks and its uploads.

``communiques ingest SITE_ROOT`` reads the site as Jekyll does: documents live in collection
folders (``_communiques``, ``_actualites``, ``_evenements``, ``_publications``, and any other
collection ``_config.yml`` declares), in ``.md`` or ``.markdown`` files; the collection is the
folder's name without its underscore. Everything else in a site (``_layouts``, ``_includes``,
``_site``, ``node_modules``, pages at the root...) is not a document and is not read. Public URLs
follow the collections' ``permalink`` in ``_config.yml``; attachments named ``/uploads/...`` in
the front matter are found in ``_uploads/`` or ``uploads/``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger("communiques.site")

KNOWN_COLLECTIONS = ("communiques", "actualites", "evenements", "publications")
"""Collections of the State's sites, recognised even without a ``_config.yml``."""
IGNORED_DIRS = frozenset({
    "_layouts", "_includes", "_site", "_sass", "_data", "_plugins", "_drafts", "_uploads",
    "_posts_templates", ".jekyll-cache", ".sass-cache", "node_modules", "vendor", ".bundle",
    "__pycache__",
})
"""Folders that never hold documents (templates, build output, dependencies, uploads)."""
UPLOAD_DIRS = ("_uploads", "uploads")
MAX_CONFIG_BYTES = 1_000_000


@dataclass
class Site:
    """A Jekyll site root: where each collection's documents are, their permalink patterns,
    and the uploads folder."""

    root: Path
    collections: dict[str, Path] = field(default_factory=dict)
    permalinks: dict[str, str] = field(default_factory=dict)
    uploads: Path | None = None


def _config(root: Path) -> dict:
    """``_config.yml`` as a mapping (empty when absent or unreadable: the site is still read
    with the known collections and the default permalinks, and the problem is logged)."""
    path = root / "_config.yml"
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError("file too large")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        log.warning("%s: ignored (%s)", path, str(exc).splitlines()[0] if str(exc) else exc)
        return {}
    return data if isinstance(data, dict) else {}


def find_site(folder: Path) -> Site | None:
    """The Jekyll site rooted at ``folder``, or None when it is a plain folder of documents.

    A site root holds a ``_config.yml`` or one of the known ``_collection`` folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    config = _config(folder)
    base = folder
    collections_dir = config.get("collections_dir")
    if isinstance(collections_dir, str) and collections_dir.strip():
        candidate = (folder / collections_dir.strip().strip("/")).resolve()
        if folder.resolve() in candidate.parents and candidate.is_dir():
            base = candidate
    declared = config.get("collections")
    names: list[str] = list(KNOWN_COLLECTIONS)
    if isinstance(declared, (dict, list)):
        names += [str(n) for n in declared if str(n) not in names]
    found = {
        name: base / f"_{name}"
        for name in names
        if re.fullmatch(r"[A-Za-z0-9][\w-]*", name) and (base / f"_{name}").is_dir()
        and not (base / f"_{name}").is_symlink() and f"_{name}" not in IGNORED_DIRS
    }
    if not found and not (folder / "_config.yml").is_file():
        return None
    permalinks: dict[str, str] = {}
    if isinstance(declared, dict):
        for name, options in declared.items():
            if isinstance(options, dict) and isinstance(options.get("permalink"), str):
                permalinks[str(name)] = options["permalink"].strip()
    uploads = next((folder / d for d in UPLOAD_DIRS if (folder / d).is_dir()), None)
    return Site(folder, found, permalinks, uploads)


_PLACEHOLDER = re.compile(r":(collection|path|name|title|slug|output_ext|year|month|day|"
                          r"i_month|i_day|short_year|categories)\b")


def jekyll_url(pattern: str, collection: str, doc_id: str, relpath: str,
               date: dt.datetime | None = None, categories: list[str] | None = None) -> str:
    """A document's URL from a Jekyll permalink pattern (``/espace-presse/:name/``).

    ``relpath`` is the file's path inside its collection folder, without its suffix
    (``:path``); date placeholders are empty for a document without a date. The site's base
    URL (``COMMUNIQUES_SITE_URL``) is prefixed, as for the default permalinks.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", doc_id.lower()).strip("-") or doc_id
    values = {
        "collection": collection, "path": relpath, "name": doc_id, "title": slug,
        "slug": slug, "output_ext": ".html",
        "year": f"{date.year:04d}" if date else "", "month": f"{date.month:02d}" if date else "",
        "day": f"{date.day:02d}" if date else "", "i_month": str(date.month) if date else "",
        "i_day": str(date.day) if date else "", "short_year": f"{date.year % 100:02d}" if date else "",
        "categories": "/".join(
            re.sub(r"[^a-z0-9]+", "-", c.lower()).strip("-") for c in categories or []
        ),
    }
    url = _PLACEHOLDER.sub(lambda m: values[m.group(1)], pattern)
    url = "/" + re.sub(r"/{2,}", "/", url).lstrip("/")
    return os.environ.get("COMMUNIQUES_SITE_URL", "").rstrip("/") + url


def env_permalinks() -> set[str]:
    """Collections whose permalink the operator set in ``COMMUNIQUES_PERMALINKS`` (these win
    over ``_config.yml``)."""
    return {
        item.partition("=")[0].strip()
        for item in os.environ.get("COMMUNIQUES_PERMALINKS", "").split(",")
        if "=" in item
    }


def attachment_reader(site: Site, cache: Path | None = None) -> object | None:
    """An attachment reader for the site's uploads (``/uploads/x.pdf`` is
    ``_uploads/x.pdf`` or ``uploads/x.pdf``), or None when the site has no uploads folder;
    ``cache``: the extracted texts' cache file (see :class:`indexer.attachments.TextCache`)."""
    if site.uploads is None:
        return None
    from indexer.attachments import AttachmentReader

    uploads = site.uploads.name

    class SiteAttachments(AttachmentReader):
        def resolve(self, ref: str) -> Path:
            rel = ref.strip().lstrip("/")
            if uploads != "uploads" and rel.startswith("uploads/"):
                ref = f"{uploads}/{rel[len('uploads/'):]}"
            return super().resolve(ref)

    return SiteAttachments(site.root, cache=cache)
