"""The feedback log: malformed records are skipped and counted, records stay small, the file
stops growing at its limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.feedback import KEPT_TEXT_CHARS, FeedbackFull, FeedbackStore

MALFORMED = [
    "not json at all",
    json.dumps(["a", "list"]),
    json.dumps({"doc_id": "a", "accepted": "Cloud"}),           # tags not a list
    json.dumps({"doc_id": "a", "accepted": [3, {"x": 1}]}),      # tags not text
    json.dumps({"doc_id": "a", "accepted": [""]}),               # an empty tag
    json.dumps({"doc_id": "a"}),                                 # no tag at all
    json.dumps({"doc_id": ["a"], "accepted": ["Cloud"]}),        # id not text
    json.dumps({"accepted": ["Cloud"]}),                         # no target
    json.dumps({"doc_id": "a", "title": 12, "accepted": ["Cloud"]}),
]


def test_malformed_records_are_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "feedback.jsonl"
    store = FeedbackStore(log)
    store.append(accepted=["Cloud"], doc_id="doc-1")
    with log.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(MALFORMED) + "\n")
    store.append(accepted=["IA"], rejected=["Cloud"], doc_id="doc-1")
    labels = store.accepted_labels()
    assert store.skipped == len(MALFORMED)
    assert [(x.doc_id, x.accepted, x.rejected) for x in labels] == [("doc-1", ["IA"], ["Cloud"])]


def test_a_record_keeps_a_bounded_text(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.jsonl")
    rec = store.append(accepted=["Cloud"], title="t", text="é" * 90_000)
    assert len(rec["text"]) == KEPT_TEXT_CHARS
    assert (tmp_path / "f.jsonl").stat().st_size < 4 * KEPT_TEXT_CHARS


def test_the_log_stops_at_its_limit(tmp_path: Path) -> None:
    log = tmp_path / "f.jsonl"
    store = FeedbackStore(log, max_bytes=2_000)
    for _ in range(5):
        store.append(accepted=["Cloud"], doc_id="doc-1", title="x" * 100)
    size = log.stat().st_size
    with pytest.raises(FeedbackFull, match="train --feedback"):
        for _ in range(50):
            store.append(accepted=["Cloud"], doc_id="doc-1", title="x" * 100)
    assert log.stat().st_size <= 2_000 and log.stat().st_size >= size
