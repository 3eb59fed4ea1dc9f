"""Attachments (press kits named by ``communique_file`` / ``files``) → searchable text.

PDF (pypdf), DOCX (python-docx), ODT and ODS (odfpy), XLSX (openpyxl, cell text) and PPTX
(python-pptx). A missing, unreadable or unsupported attachment is reported and recorded on the
document; it never rejects the communiqué.

Extracted text is kept in a cache beside the index (SQLite), keyed by the file's content hash,
and each file's hash is remembered with its size and modification time: an ingest of an
unchanged site opens no attachment at all, a changed one is read again, and its new hash
joins the document's own so the document is re-indexed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

from indexer.document import Attachment, Document, attachment_type

MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
MAX_ATTACHMENT_CHARS = 200_000
"""Text kept per attachment: enough for a press kit, bounded for the index."""
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_ZIP_MEMBERS = 10_000
"""Office files are zip archives: one that would unpack beyond these (a zip bomb) is refused
before any library opens it."""
EXTRACTION_VERSION = "2"
"""Part of every cache entry: bumped when extraction changes, so cached texts are re-made."""
CACHE_FILE = Path("attachment-cache") / "texts.sqlite"
"""Where the cache lives inside an index folder (a sub-folder: a rebuild of the index, which
removes its files, keeps it)."""

logging.getLogger("pypdf").setLevel(logging.ERROR)


class AttachmentError(Exception):
    """An attachment that cannot be read; the message says why."""


# --- one extractor per format -----------------------------------------------------------------


class _Text:
    """Collects text parts up to :data:`MAX_ATTACHMENT_CHARS` (a huge sheet stops early)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size >= MAX_ATTACHMENT_CHARS

    def add(self, text: str) -> None:
        text = text.strip()
        if text and not self.full:
            self.parts.append(text)
            self.size += len(text) + 1

    def __str__(self) -> str:
        return "\n".join(self.parts)[:MAX_ATTACHMENT_CHARS]


def pdf_text(path: Path) -> str:
    """Text of a PDF, page by page."""
    from pypdf import PdfReader

    out = _Text()
    for page in PdfReader(str(path)).pages:
        out.add(page.extract_text() or "")
        if out.full:
            break
    return str(out).replace("\n", "\n\n")


def docx_text(path: Path) -> str:
    """Paragraphs and table cells of a Word document, in order."""
    import docx

    document = docx.Document(str(path))
    out = _Text()
    for block in document.iter_inner_content():
        if hasattr(block, "rows"):
            for row in block.rows:
                out.add(" ".join(cell.text.strip() for cell in row.cells if cell.text.strip()))
        else:
            out.add(block.text)
        if out.full:
            break
    return str(out)


def odf_text(path: Path) -> str:
    """Headings and paragraphs of an OpenDocument text, or the cell text of a spreadsheet."""
    from odf import teletype
    from odf.element import Element
    from odf.namespaces import TABLENS, TEXTNS
    from odf.opendocument import load

    document = load(str(path))
    out = _Text()

    def walk(node: Element) -> Iterator[Element]:
        for child in node.childNodes:
            if child.nodeType != child.ELEMENT_NODE:
                continue
            if child.qname in ((TEXTNS, "p"), (TEXTNS, "h"), (TABLENS, "table-row")):
                yield child
            else:
                yield from walk(child)

    for element in walk(document.body):
        if element.qname == (TABLENS, "table-row"):
            cells = [teletype.extractText(p) for p in walk(element)]
            out.add(" ".join(c.strip() for c in cells if c.strip()))
        else:
            out.add(teletype.extractText(element))
        if out.full:
            break
    return str(out)


def xlsx_text(path: Path) -> str:
    """Cell text of every sheet, a line per row (values, not formulas)."""
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    out = _Text()
    try:
        for sheet in workbook.worksheets:
            out.add(sheet.title)
            for row in sheet.iter_rows(values_only=True):
                out.add(" ".join(str(v).strip() for v in row if v is not None and str(v).strip()))
                if out.full:
                    return str(out)
    finally:
        workbook.close()
    return str(out)


def pptx_text(path: Path) -> str:
    """Text of every shape (groups and tables included) of every slide, and the notes."""
    from pptx import Presentation

    out = _Text()

    def shapes(items: object) -> Iterator[object]:
        for shape in items:  # type: ignore[attr-defined]
            if getattr(shape, "shape_type", None) == 6:  # a group: its own shapes
                yield from shapes(shape.shapes)
            else:
                yield shape

    for slide in Presentation(str(path)).slides:
        for shape in shapes(slide.shapes):
            if getattr(shape, "has_text_frame", False):
                out.add(shape.text_frame.text)
            if getattr(shape, "has_table", False):
                for row in shape.table.rows:
                    out.add(" ".join(c.text.strip() for c in row.cells if c.text.strip()))
        if slide.has_notes_slide:
            out.add(slide.notes_slide.notes_text_frame.text)
        if out.full:
            break
    return str(out)


def plain_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[:MAX_ATTACHMENT_CHARS]


EXTRACTORS: dict[str, Callable[[Path], str]] = {
    ".pdf": pdf_text, ".docx": docx_text, ".odt": odf_text, ".ods": odf_text,
    ".xlsx": xlsx_text, ".pptx": pptx_text, ".txt": plain_text, ".md": plain_text,
}
ZIPPED = frozenset({".docx", ".odt", ".ods", ".xlsx", ".pptx"})


def _check_zip(path: Path, kind: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise AttachmentError(f"unreadable {kind} (not a valid archive: {exc})") from None
    unpacked = sum(m.file_size for m in members)
    if len(members) > MAX_ZIP_MEMBERS or unpacked > MAX_UNPACKED_BYTES:
        raise AttachmentError(
            f"unreadable {kind} (would unpack to {unpacked:,} bytes in {len(members):,} files)"
        )


def extract_text(path: Path) -> str:
    """The text of one attachment, by its extension; :class:`AttachmentError` says why not."""
    suffix = path.suffix.lower()
    extractor = EXTRACTORS.get(suffix)
    if extractor is None:
        raise AttachmentError(f"unsupported attachment type '{suffix or path.name}'")
    kind = attachment_type(path.name)
    if suffix in ZIPPED:
        _check_zip(path, kind)
    try:
        return extractor(path)
    except AttachmentError:
        raise
    except Exception as exc:  # noqa: BLE001 - third-party parsers on any file: never fatal
        raise AttachmentError(f"unreadable {kind} ({type(exc).__name__}: {exc})"[:300]) from None


# --- the cache --------------------------------------------------------------------------------


class TextCache:
    """Extracted texts by content hash, and content hashes by (path, size, mtime), in SQLite.

    One ingest at a time writes it (the ingest lock); a cache that cannot be opened (a
    read-only folder) only costs re-extraction, never the ingest."""

    def __init__(self, path: Path | None) -> None:
        self.db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path))
            self.db.executescript(
                "CREATE TABLE IF NOT EXISTS texts (digest TEXT PRIMARY KEY, version TEXT, "
                "text TEXT, error TEXT);"
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, digest TEXT);"
            )
        except (OSError, sqlite3.Error) as exc:
            logging.getLogger("communiques.ingest").warning(
                "attachment cache %s unusable (%s): attachments are read again", path, exc
            )
            self.db = None

    def digest(self, path: Path, info: os.stat_result) -> str | None:
        if self.db is None:
            return None
        row = self.db.execute("SELECT size, mtime_ns, digest FROM files WHERE path = ?",
                              (str(path),)).fetchone()
        if row and row[0] == info.st_size and row[1] == info.st_mtime_ns:
            return row[2]
        return None

    def remember(self, path: Path, info: os.stat_result, digest: str) -> None:
        if self.db is not None:
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                            (str(path), info.st_size, info.st_mtime_ns, digest))

    def text(self, digest: str) -> tuple[str, str] | None:
        if self.db is None:
            return None
        row = self.db.execute("SELECT text, error FROM texts WHERE digest = ? AND version = ?",
                              (digest, EXTRACTION_VERSION)).fetchone()
        return (row[0], row[1]) if row else None

    def store(self, digest: str, text: str, error: str) -> None:
        if self.db is not None:
            self.db.execute("INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?)",
                            (digest, EXTRACTION_VERSION, text, error))

    def commit(self) -> None:
        if self.db is not None:
            self.db.commit()

    def close(self) -> None:
        if self.db is not None:
            self.db.commit()
            self.db.close()
            self.db = None


class AttachmentReader:
    """Resolves attachment paths under a root folder and fills in their text and size.

    Called by ingest on each parsed document; returns a string of the attachments' content
    hashes (to fold into the document's hash). ``problems`` collects (path, reason) pairs;
    ``extracted`` counts the files whose text was extracted, ``hashed`` those read to hash
    them (both 0 on an unchanged site with a cache).
    """

    def __init__(self, root: Path, cache: Path | None = None) -> None:
        self.root = Path(root)
        self.problems: list[tuple[str, str]] = []
        self.cache = TextCache(cache)
        self._memory: dict[str, tuple[str, str]] = {}
        self.extracted = 0
        self.hashed = 0
        self.cached = 0

    def resolve(self, ref: str) -> Path:
        """The file a front-matter path names (``/uploads/Dossier%20presse.pdf`` too)."""
        root = self.root.resolve()
        rel = ref.strip().split("?")[0].split("#")[0].lstrip("/")
        candidates = [rel] if unquote(rel) == rel else [rel, unquote(rel)]
        for candidate in candidates:
            path = (self.root / candidate).resolve()
            if root not in path.parents:
                raise AttachmentError("path leaves the attachments folder")
            if path.is_file():
                return path
        raise AttachmentError("file not found")

    def _read(self, att: Attachment) -> str:
        path = self.resolve(att.path)
        info = path.stat()
        att.size = info.st_size
        if info.st_size > MAX_ATTACHMENT_BYTES:
            raise AttachmentError("file too large")
        digest = self.cache.digest(path, info)
        if digest is None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self.hashed += 1
            self.cache.remember(path, info, digest)
        found = self._memory.get(digest) or self.cache.text(digest)
        if found is None:
            self.extracted += 1
            try:
                found = (extract_text(path), "")
            except AttachmentError as exc:
                found = ("", str(exc))
            self.cache.store(digest, *found)
        else:
            self.cached += 1
        self._memory[digest] = found
        att.text, error = found
        if error:
            raise AttachmentError(error)
        return digest

    def __call__(self, doc: Document) -> str:
        digests = []
        for att in doc.attachments:
            if att.error:  # refused when the front matter was read (an invalid path)
                self.problems.append((f"{doc.path} → {att.path}", att.error))
                digests.append("error:" + att.error)
                continue
            try:
                digests.append(self._read(att))
            except (AttachmentError, OSError, ValueError) as exc:
                att.error = str(exc)
                digests.append("error:" + att.error)
                self.problems.append((f"{doc.path} → {att.path}", att.error))
        self.cache.commit()
        return "|".join(digests)

    def summary(self) -> dict[str, int]:
        return {"extracted": self.extracted, "from_cache": self.cached, "hashed": self.hashed}

    def close(self) -> None:
        self.cache.close()
