"""``communiques tags | untagged | feedback``: the tagging service on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main

KNOWN_ID = "cloud-interministeriel-nubo-le-cloud-de-letat-souvre-a-de-nouveaux-ministeres"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_tags_lists_counts_and_examples(sample_index: Path, sample_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tags", "--index", str(sample_index), "--model",
                         str(sample_model), "--json")
    assert status == 0
    data = json.loads(out)
    cloud = next(t for t in data["tags"] if t["key"] == "cloud")
    assert cloud["count"] >= 2 and len(cloud["examples"]) == 2 and cloud["suggestable"]
    assert all(e["url"] == f"/documents/{e['id']}" for e in cloud["examples"])
    status, out, _ = run(capsys, "tags", "--index", str(sample_index), "--model",
                         str(sample_model))
    assert status == 0 and "ex. " in out and "étiquettes" in out


def test_untagged_suggests_ranked_tags(sample_index: Path, sample_model: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "untagged", "--index", str(sample_index), "--model",
                         str(sample_model), "--limit", "2", "--k", "3", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["total"] >= len(data["documents"])
    for d in data["documents"]:
        assert len(d["tags"]) == 3 and all("confident" in t for t in d["tags"])
    missing = run(capsys, "untagged", "--index", str(sample_index), "--model",
                  str(sample_index / "none.pkl"))
    assert missing[0] == 2 and "no tag model" in missing[2]


def test_feedback_records_and_summarises(sample_index: Path, sample_model: Path,
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "feedback.jsonl"
    status, out, _ = run(capsys, "feedback", "--index", str(sample_index), "--feedback",
                         str(log), "--doc", KNOWN_ID, "--accept", "Cloud", "--reject", "IA",
                         "--add", "Souveraineté", "--json")
    assert status == 0
    record = json.loads(out)
    assert record["accepted"] == ["Cloud"] and record["added"] == ["Souveraineté"]
    assert record["source"] == "cli"
    status, out, _ = run(capsys, "feedback", "--feedback", str(log), "--json")
    summary = json.loads(out)
    assert summary["records"] == 1
    assert summary["tags"]["Souveraineté"] == {"accepted": 0, "rejected": 0, "added": 1}
    bad = run(capsys, "feedback", "--index", str(sample_index), "--feedback", str(log),
              "--doc", "no-such-doc", "--accept", "Cloud")
    assert bad[0] == 2 and "no-such-doc" in bad[2]
    assert run(capsys, "feedback", "--feedback", str(log), "--accept", "Cloud")[0] == 2
