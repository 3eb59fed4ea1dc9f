"""Attachments (PDF press kits named by ``communique_file`` / ``files``) → searchable text.

A missing or unreadable attachment is reported and recorded on the document; it never rejects
the communiqué. Extracted text is cached by the file's content hash, so an attachment is read
again only when it changes, and that hash joins the document's own so the document is
re-indexed when its attachment changes.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from indexer.document import Attachment, Document

MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
MAX_ATTACHMENT_CHARS = 200_000
"""Text kept per attachment: enough for a press kit, bounded for the index."""

logging.getLogger("pypdf").setLevel(logging.ERROR)


class AttachmentError(Exception):
    """An attachment that cannot be read; the message says why."""


def pdf_text(path: Path) -> str:
    """Text of a PDF, page by page (pypdf)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AssertionError) as exc:
        raise AttachmentError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    return text[:MAX_ATTACHMENT_CHARS]


def extract_text(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return pdf_text(path)
    if suffix in (".txt", ".md"):
        return path.read_text(encoding="utf-8", errors="replace")[:MAX_ATTACHMENT_CHARS]
    raise AttachmentError(f"unsupported attachment type '{suffix or path.name}'")


class AttachmentReader:
    """Resolves attachment paths under a root folder and fills in their text.

    Called by ingest on each parsed document; returns a string of the attachments' content
    hashes (to fold into the document's hash). ``problems`` collects (path, reason) pairs.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.problems: list[tuple[str, str]] = []
        self._cache: dict[str, str] = {}

    def resolve(self, ref: str) -> Path:
        rel = ref.strip().lstrip("/")
        path = (self.root / rel).resolve()
        root = self.root.resolve()
        if root not in path.parents:
            raise AttachmentError("path leaves the attachments folder")
        return path

    def _read(self, att: Attachment) -> str:
        path = self.resolve(att.path)
        if not path.is_file():
            raise AttachmentError("file not found")
        if path.stat().st_size > MAX_ATTACHMENT_BYTES:
            raise AttachmentError("file too large")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._cache:
            self._cache[digest] = extract_text(path)
        att.text = self._cache[digest]
        return digest

    def __call__(self, doc: Document) -> str:
        digests = []
        for att in doc.attachments:
            try:
                digests.append(self._read(att))
            except (AttachmentError, OSError) as exc:
                att.error = str(exc)
                digests.append("error:" + att.error)
                self.problems.append((f"{doc.path} → {att.path}", att.error))
        return "|".join(digests)
