"""Jekyll markdown files (YAML front matter + kramdown body) → :class:`Document`.

The site's files are messy in known ways: titles with ``&nbsp;`` and folded line breaks, tags as
a list, a string or absent, kramdown attribute lists (``{: .text-center}``) and raw HTML in the
body. Everything a reader would not see as text is dropped here, once, so the index, the
snippets and the tag suggester all work on the same clean text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import itertools
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import frontmatter
import yaml
from markdown_it import MarkdownIt

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Larger files are rejected: a real communiqué is a few kilobytes."""
MAX_FRONT_MATTER_CHARS = 100_000
MAX_BODY_CHARS = 100_000
"""Front matter and body beyond these are rejected before parsing (a real front matter is
2 KB, a real body 5 KB): YAML and markdown parsing, then spaCy, stay bounded in time and memory
(spaCy refuses texts over 1,000,000 characters outright)."""
MAX_FIELD_CHARS = 100_000
"""Text of one field given to the analysis at most (attachments joined are cut there)."""
MAX_WORDS = 10_000
"""Words (spaCy tokens, estimated) of title, chapeau and body together: a real communiqué has
about 1,000. spaCy's memory grows with the tokens of a batch (some 15 KB each for dense
punctuation), so this bounds an ingest's memory whatever the files hold."""
_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_YAML_ALIASES = 20
MAX_YAML_DEPTH = 50

DEFAULT_PERMALINKS = {
    "communiques": "/espace-presse/{id}/",
    "actualites": "/actualites/{id}/",
    "evenements": "/agenda/{id}/",
}


class DocumentError(Exception):
    """A file that cannot become a document; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Raised in the API's write process and re-raised in the worker (pickled).
        return type(self), (self.path, self.reason)


@dataclass
class Attachment:
    """A file attached to a communiqué (press kit PDF, office file), as named in the front
    matter; ``size`` (bytes) and ``text`` are filled in when the file is read."""

    path: str
    name: str = ""
    text: str = ""
    error: str = ""
    url: str = ""
    type: str = ""
    size: int | None = None

    def record(self) -> dict[str, Any]:
        """What the index stores and the API shows of an attachment (its text apart)."""
        return {"path": self.path, "name": self.name, "error": self.error, "url": self.url,
                "type": self.type, "size": self.size}


@dataclass
class Document:
    """One communiqué, actualité or évènement, ready to be analysed and indexed."""

    id: str
    collection: str
    path: str
    url: str
    title: str
    date: dt.datetime | None
    """None for a document without a date (Jekyll accepts collection documents without one)."""
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    chapeau: str = ""
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    published: bool = True
    hash: str = ""

    @property
    def year(self) -> int | None:
        return self.date.year if self.date is not None else None

    @property
    def date_iso(self) -> str:
        """The date as written (its own offset), ``""`` when there is none."""
        return self.date.isoformat() if self.date is not None else ""

    @property
    def timestamp(self) -> float | None:
        return self.date.timestamp() if self.date is not None else None

    @property
    def utc_naive(self) -> dt.datetime | None:
        """The date in UTC without a zone (Whoosh's date field); within range by
        construction (see :func:`_date_field`)."""
        if self.date is None:
            return None
        return self.date.astimezone(dt.UTC).replace(tzinfo=None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["date"] = self.date_iso
        return d


def permalink(collection: str, doc_id: str, patterns: dict[str, str] | None = None) -> str:
    """The public URL of a document, built like the site's permalinks.

    Patterns come from ``COMMUNIQUES_PERMALINKS`` (``collection=/pattern/{id}/,...``) when set,
    and are prefixed with ``COMMUNIQUES_SITE_URL`` (empty: relative URLs).
    """
    if patterns is None:
        patterns = dict(DEFAULT_PERMALINKS)
        for item in os.environ.get("COMMUNIQUES_PERMALINKS", "").split(","):
            if "=" in item:
                key, _, pattern = item.partition("=")
                patterns[key.strip()] = pattern.strip()
    pattern = patterns.get(collection, "/" + collection + "/{id}/")
    return os.environ.get("COMMUNIQUES_SITE_URL", "").rstrip("/") + pattern.format(id=doc_id)


# --- markdown to text -------------------------------------------------------------------------

_IAL = re.compile(r"\{:{1,2}[^}\n]{0,200}?[})]")
"""Bounded: an unbounded lazy scan made a long line of ``{:`` quadratic (seconds per 10 KB)."""
_BLOCK_TAGS = frozenset(
    ["p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table", "blockquote", "section", "article", "pre", "hr"]
)
_md = MarkdownIt("commonmark", {"html": True}).enable("table")


class _TextExtractor(HTMLParser):
    """HTML → text, with a line break at block boundaries; script and style are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def markdown_to_text(source: str) -> str:
    """Kramdown body → plain text paragraphs (attribute lists and HTML tags removed)."""
    extractor = _TextExtractor()
    extractor.feed(_md.render(_IAL.sub("", source)))
    extractor.close()
    text = "".join(extractor.parts).replace("\xa0", " ")
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _inline_text(value: str) -> str:
    """A one-line field (title): entities decoded (``&nbsp;``), line breaks flattened. Titles
    are plain text: anything that looks like a tag is kept as text (and escaped on output),
    never interpreted."""
    return re.sub(r"\s+", " ", html.unescape(value).replace("\xa0", " ")).strip()


# --- front matter fields ---------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML, except that an impossible date (``2023-13-45``) stays text instead of
    failing the whole file: only the fields we use decide whether a file is rejected.

    Aliases and nesting are bounded: a front matter never needs them, and an alias bomb (a
    few lines expanding to billions of items) or a 10,000-deep nesting is refused at once."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases (an alias bomb?)",
                    self.peek_event().start_mark,
                )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


def _int_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    """An integer beyond Python's conversion limit (4,300 digits) stays text, like an
    impossible date, instead of failing the whole front matter."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)


class _Handler(frontmatter.YAMLHandler):
    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_HANDLER = _Handler()

# Every front-matter value this module uses goes through the functions below: one place says
# what a field may hold, and a value outside that is refused with the field's name, before
# anything downstream (dates in UTC, the index's columns, JSON, UTF-8) can trip over it.

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_PATH_CHARS = 1_000
"""An attachment path or permalink longer than this is not a path."""


def _scalar_text(value: Any, name: str, path: str, what: str = "text") -> str:  # noqa: ANN401
    """Text, or a number written as text; anything else is refused with the field's name.

    YAML escapes (``"\\ud800"``, ``"\\0"``) can put in a string what no UTF-8 file holds: an
    unpaired surrogate is refused (it cannot be written to the index), control characters
    are dropped."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DocumentError(path, f"field '{name}': expected {what}, got {type(value).__name__}")
    found = _SURROGATE.search(value)
    if found:
        raise DocumentError(
            path, f"field '{name}': invalid character U+{ord(found.group()):04X} (not Unicode text)"
        )
    return _CONTROL.sub("", value)


def _text_field(meta: dict[str, Any], name: str, path: str, required: bool = False) -> str:
    value = meta.get(name)
    if value is None:
        if required:
            raise DocumentError(path, f"field '{name}' is missing")
        return ""
    value = _scalar_text(value, name, path)
    if required and not value.strip():
        raise DocumentError(path, f"field '{name}' is empty")
    return value


def _list_field(meta: dict[str, Any], name: str, path: str) -> list[str]:
    """Tags and categories: a list, a single string (comma separated) or absent."""
    value = meta.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = _scalar_text(value, name, path).split(",")
    elif isinstance(value, list):
        items = value
    else:
        raise DocumentError(
            path, f"field '{name}': expected a list or text, got {type(value).__name__}"
        )
    out = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            raise DocumentError(
                path, f"field '{name}': items must be text, got {type(item).__name__}"
            )
        item = re.sub(r"\s+", " ", html.unescape(_scalar_text(item, name, path))).strip()
        if item and item not in out:
            out.append(item)
    return out


def _date_field(meta: dict[str, Any], path: str) -> dt.datetime | None:
    """The document's date, or None when it has none (absent, empty or null).

    A date is kept with its own offset, and must exist in UTC too (the index orders and
    filters in UTC): ``9999-12-31T23:59:59-12:00`` is in year 10000 there, and refused."""
    value = meta.get("date")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        value = _scalar_text(value, "date", path, "a date")
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace(" +", "+").replace(" -", "-"))
        except ValueError:
            raise DocumentError(path, f"field 'date': {value[:50]!r} is not a date") from None
    else:
        raise DocumentError(path, f"field 'date': expected a date, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        parsed.astimezone(dt.UTC)
        parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        raise DocumentError(
            path, f"field 'date': {parsed.isoformat()} is out of range "
            "(in UTC it falls outside the years 1 to 9999)"
        ) from None
    return parsed


ATTACHMENT_TYPES = {
    ".pdf": "PDF", ".docx": "DOCX", ".odt": "ODT", ".ods": "ODS", ".xlsx": "XLSX",
    ".pptx": "PPTX", ".txt": "TXT", ".md": "TXT",
}


def attachment_type(ref: str) -> str:
    """``/uploads/Dossier.PDF`` → ``PDF``: the format shown beside an attachment."""
    suffix = Path(ref.split("?")[0].split("#")[0]).suffix.lower()
    return ATTACHMENT_TYPES.get(suffix, suffix.lstrip(".").upper()[:10])


def site_url(ref: str) -> str:
    """The public URL of a site path (``/uploads/x.pdf``), under ``COMMUNIQUES_SITE_URL``."""
    if re.match(r"^https?://", ref):
        return ref
    base = os.environ.get("COMMUNIQUES_SITE_URL", "").rstrip("/")
    return base + "/" + quote(ref.lstrip("/"), safe="/%:@&=+$,;~!*'()")


def _attachment(ref: Any, name: Any, path: str) -> Attachment | None:  # noqa: ANN401
    """One attachment reference; a path that cannot be one is recorded with its reason
    (the communiqué itself is not refused for it)."""
    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    label = name if isinstance(name, str) else str(name) if isinstance(name, (int, float)) else ""
    label = _CONTROL.sub("", _SURROGATE.sub("\ufffd", label)).strip()[:500]
    if len(ref) > MAX_PATH_CHARS or _SURROGATE.search(ref) or _CONTROL.search(ref):
        shown = _CONTROL.sub("?", _SURROGATE.sub("?", ref))[:100]
        return Attachment(path=shown, name=label, error="invalid path (control characters or "
                          f"over {MAX_PATH_CHARS:,} characters)", type=attachment_type(shown))
    return Attachment(path=ref, name=label, url=site_url(ref), type=attachment_type(ref))


def _attachments(meta: dict[str, Any], path: str) -> list[Attachment]:
    found: list[Attachment | None] = [
        _attachment(meta.get("communique_file"), "Communiqué de presse", path)
    ]
    files = meta.get("files")
    if isinstance(files, list):
        for item in files:
            if isinstance(item, str):
                found.append(_attachment(item, "", path))
            elif isinstance(item, dict):
                found.append(_attachment(item.get("file"), item.get("nom") or item.get("name")
                                         or "", path))
    seen: set[str] = set()
    return [a for a in found if a is not None and not (a.path in seen or seen.add(a.path))]


_FALSE = ("false", "no", "non", "0", "off", "n")
_TRUE = ("true", "yes", "oui", "1", "on", "y")


def _published(meta: dict[str, Any], path: str) -> bool:
    value = meta.get("published", True)
    if value is None or isinstance(value, bool):
        return value is not False
    if isinstance(value, str) and value.strip().lower() in _FALSE + _TRUE + ("",):
        return value.strip().lower() not in _FALSE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    shown = repr(value)[:50] if isinstance(value, (str, int, float)) else type(value).__name__
    raise DocumentError(path, f"field 'published': expected true or false, got {shown}")


def _permalink(meta: dict[str, Any], path: str) -> str | None:
    """A document's own ``permalink:`` (Jekyll's), when it is a plain path: the public URL.

    Patterns with placeholders (``/:categories/:title/``) are left to the collection's."""
    value = meta.get("permalink")
    if value is None:
        return None
    value = _scalar_text(value, "permalink", path).strip()
    if not value.startswith("/") and not re.match(r"^https?://", value):
        return None
    if ":" in value.split("//", 1)[-1]:
        return None
    if len(value) > MAX_PATH_CHARS or re.search(r"\s", value):
        raise DocumentError(path, "field 'permalink': not a URL path (spaces, or too long)")
    return site_url(value) if value.startswith("/") else value


# --- entry points -----------------------------------------------------------------------------


def read_source(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Read a file as UTF-8 text, rejecting what is not a text file with a clear reason.

    Only regular files are opened (a FIFO would block, ``/dev/zero`` never end), and never more
    than ``max_bytes`` + 1 bytes are read, even from a file that grows meanwhile.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError(path, "not a regular file (a device, FIFO or socket)")
        if info.st_size > max_bytes:
            raise DocumentError(
                path, f"file too large ({info.st_size:,} bytes, limit {max_bytes:,})"
            )
        with open(path, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise DocumentError(path, "not a regular file (a device, FIFO or socket)")
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(path, f"unreadable: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise DocumentError(path, f"file too large (over {max_bytes:,} bytes)")
    return decode_source(raw, path)


def decode_source(raw: bytes, path: str | os.PathLike[str]) -> str:
    if b"\x00" in raw[:8192]:
        raise DocumentError(path, "binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(path, f"not UTF-8 (invalid byte at offset {exc.start})") from None


def count_words(text: str, max_run: int = 100) -> int:
    """Tokens as spaCy will see them, about: words and punctuation signs, runs of more than
    ``max_run`` characters without a space left out (the analysis blanks them)."""
    return sum(len(_TOKEN.findall(run)) for run in text.split() if len(run) <= max_run)


def content_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def parse_text(
    source: str, doc_id: str, collection: str, path: str = "", url: str | None = None,
    only_text: bool = False,
) -> Document:
    """Parse the text of one markdown file. ``path`` only serves error messages and display.

    With ``only_text`` (tag suggestion), only what a suggestion reads is looked at: a title or
    a text is enough, and the other fields are neither required nor checked."""
    where = path or doc_id
    if not source.lstrip().startswith("---"):
        raise DocumentError(where, "no YAML front matter (the file must start with ---)")
    delimiters = list(itertools.islice(re.finditer(r"^-{3,}\s*$", source, re.MULTILINE), 2))
    if len(delimiters) < 2:
        raise DocumentError(where, "front matter is not closed by a --- line")
    front_chars = delimiters[1].start() - delimiters[0].end()
    if front_chars > MAX_FRONT_MATTER_CHARS:
        raise DocumentError(
            where, f"front matter too long ({front_chars:,} characters, limit {MAX_FRONT_MATTER_CHARS:,})"
        )
    body_chars = len(source) - delimiters[1].end()
    if body_chars > MAX_BODY_CHARS:
        raise DocumentError(
            where, f"body too long ({body_chars:,} characters, limit {MAX_BODY_CHARS:,})"
        )
    try:
        post = frontmatter.loads(source, handler=_HANDLER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DocumentError(where, f"invalid YAML front matter{at}: {problem}") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's problem only
        raise DocumentError(where, f"invalid front matter: {exc}") from None
    meta = post.metadata
    if not isinstance(meta, dict):
        raise DocumentError(where, "front matter is not a mapping of fields")
    title = _inline_text(_text_field(meta, "title", where, required=not only_text))
    if not title and not only_text:
        raise DocumentError(where, "field 'title' is empty")
    chapeau_src = _text_field(meta, "chapeau-text", where) or _text_field(meta, "chapeau", where)
    chapeau, body = markdown_to_text(chapeau_src), markdown_to_text(post.content)
    words = sum(count_words(t) for t in (title, chapeau, body))
    if words > MAX_WORDS:
        raise DocumentError(
            where, f"too many words to analyse ({words:,}, limit {MAX_WORDS:,})"
        )
    if only_text:
        if not (title or chapeau or body):
            raise DocumentError(where, "no title and no text: nothing to read")
        return Document(id=doc_id, collection=collection, path=path, url="", title=title,
                        date=None, chapeau=chapeau, body=body, hash=content_hash(source))
    own_url = _permalink(meta, where)
    return Document(
        id=doc_id,
        collection=collection,
        path=path,
        url=url if url is not None else own_url or permalink(collection, doc_id),
        title=title,
        date=_date_field(meta, where),
        tags=_list_field(meta, "tags", where),
        categories=_list_field(meta, "categories", where),
        chapeau=chapeau,
        body=body,
        attachments=_attachments(meta, where),
        published=_published(meta, where),
        hash=content_hash(source),
    )


def parse_file(path: Path, only_text: bool = False) -> Document:
    """Parse one file: id = the file's stem, collection = its folder's name."""
    source = read_source(path)
    return parse_text(source, path.stem, path.parent.name, str(path), only_text=only_text)
