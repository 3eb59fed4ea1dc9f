"""Editors' feedback on suggestions: an append-only JSON Lines log, replayed at training time.

Each record says which suggested tags an editor accepted or rejected, and which tags they added by
hand, for a document (``doc_id``)
or an unsaved draft (identified by the hash of its title and text). Records are appended with a
single ``write`` under an exclusive lock and fsync'd, so concurrent workers never interleave and
an acknowledged record survives a crash. A crash *during* a write can at worst leave a truncated
last line: reading skips it (and counts it), and the next append starts on a fresh line.

The log is never rewritten; :meth:`FeedbackStore.accepted_labels` folds it in order (a later
rejection cancels an earlier acceptance) into the labels training should use.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.suggester import draft_hash

MAX_TEXT_CHARS = 100_000
"""Longest draft text accepted with a feedback record."""
KEPT_TEXT_CHARS = 20_000
"""Of a draft's text, the log keeps this much: enough to learn from, and a record stays small
(at most about 100 kB in UTF-8) whatever is posted."""
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""The log stops taking records at this size until it is rotated (see :meth:`FeedbackStore.append`)."""


class FeedbackError(ValueError):
    """A feedback record that cannot be stored; the message names the field."""


class FeedbackFull(FeedbackError):
    """The log has reached its size limit: learn from it and rotate it before adding more."""


@dataclass
class FeedbackLabels:
    """The tags editors confirmed for one document or draft, after replaying the log."""

    target: str
    doc_id: str | None = None
    title: str = ""
    text: str = ""
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _clean_tags(values: Iterable[Any], name: str) -> list[str]:
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            raise FeedbackError(f"{name}: tags must be text")
        v = " ".join(v.split())
        if not v:
            continue
        if len(v) > 200:
            raise FeedbackError(f"{name}: a tag is longer than 200 characters")
        if v not in out:
            out.append(v)
    return out


class FeedbackStore:
    """The JSONL feedback log at ``path`` (created on first append)."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.skipped = 0
        """Unreadable lines met by the last :meth:`records` pass (a torn last write)."""

    def append(
        self,
        accepted: Iterable[str] = (),
        rejected: Iterable[str] = (),
        doc_id: str | None = None,
        title: str = "",
        text: str = "",
        keep_text: bool = True,
        added: Iterable[str] = (),
        source: str = "editor",
    ) -> dict[str, Any]:
        """Validate and durably append one record; returns it (with its id and time).

        ``added``: tags the editor gave by hand (not suggested); ``source``: ``editor`` (the
        page and the JSON API) or ``learn`` (the Annif-compatible API)."""
        add = _clean_tags(added, "added")
        acc = [t for t in _clean_tags(accepted, "accepted") if t not in add]
        rej = [t for t in _clean_tags(rejected, "rejected") if t not in acc and t not in add]
        if not acc and not rej and not add:
            raise FeedbackError("accepted, rejected, added: at least one tag is needed")
        title, text = (title or "").strip(), (text or "").strip()
        if len(text) > MAX_TEXT_CHARS:
            raise FeedbackError(f"text: longer than {MAX_TEXT_CHARS} characters")
        doc_id = (doc_id or "").strip() or None
        if doc_id is None and not (title or text):
            raise FeedbackError("doc_id: give a document id, or the draft's title or text")
        record: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "doc_id": doc_id,
            "draft": None if doc_id else draft_hash(title, text),
            "title": title,
            "accepted": acc,
            "rejected": rej,
            "added": add,
            "source": source,
        }
        if keep_text and text:
            record["text"] = text[:KEPT_TEXT_CHARS]
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size + len(line) > self.max_bytes:
                raise FeedbackFull(
                    f"{self.path}: the feedback log has reached its limit of "
                    f"{self.max_bytes:,} bytes; run `communiques train --feedback {self.path}`, "
                    "then move the file aside (COMMUNIQUES_FEEDBACK_MAX_MB sets the limit)"
                )
            if size and _last_byte(self.path, size) != b"\n":
                line = b"\n" + line  # a previous write was torn: start on a fresh line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record, oldest first; torn or invalid lines are skipped."""
        self.skipped = 0
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            for raw in fh:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    self.skipped += 1
                    continue
                if not _well_formed(rec):
                    self.skipped += 1
                    continue
                yield rec

    def accepted_labels(self) -> list[FeedbackLabels]:
        """Per document or draft, the tags accepted and not rejected since, in log order."""
        by_target: dict[str, FeedbackLabels] = {}
        for rec in self.records():
            doc_id = rec.get("doc_id") or None
            target = f"doc:{doc_id}" if doc_id else f"draft:{rec.get('draft') or ''}"
            entry = by_target.setdefault(target, FeedbackLabels(target=target, doc_id=doc_id))
            entry.title = rec.get("title") or entry.title
            entry.text = rec.get("text") or entry.text
            for tag in [*rec.get("accepted", []), *rec.get("added", [])]:
                if tag in entry.rejected:
                    entry.rejected.remove(tag)
                if tag not in entry.accepted:
                    entry.accepted.append(tag)
            for tag in rec.get("rejected", []):
                if tag in entry.accepted:
                    entry.accepted.remove(tag)
                if tag not in entry.rejected:
                    entry.rejected.append(tag)
        return list(by_target.values())


def _well_formed(rec: object) -> bool:
    """A record as :meth:`FeedbackStore.append` writes it: anything else (hand-edited, from
    another program, truncated into valid JSON) is skipped and counted, never learnt from."""
    if not isinstance(rec, dict):
        return False
    for name in ("accepted", "rejected", "added"):
        tags = rec.get(name, [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            return False
    if not (rec.get("accepted") or rec.get("rejected") or rec.get("added")):
        return False
    for name in ("doc_id", "draft", "title", "text"):
        if rec.get(name) is not None and not isinstance(rec[name], str):
            return False
    return bool(rec.get("doc_id") or rec.get("draft"))


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)
