"""Search through the command line: French matching and known-item quality on the real corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main
from tests.conftest import QUERIES_DEV


def search(index: Path, capsys: pytest.CaptureFixture[str], *query: str) -> list[dict]:
    capsys.readouterr()
    assert main(["search", *query, "--index", str(index), "--json", "--limit", "10"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("numériques", "numérique"),
        ("Etat plateforme", "État"),
        ("l’identité numérique", "identité"),
        ("l'identite", "identité"),
        ("développé", "développ"),
        ("recrutés", "recrut"),
    ],
)
def test_inflections_elisions_accents(sample_index: Path, capsys: pytest.CaptureFixture[str], query: str, word: str) -> None:
    hits = search(sample_index, capsys, query + " ")
    assert hits, query
    top = hits[0]
    assert "<mark>" in top["title_html"] + top["snippet_html"]
    marked = (top["title_html"] + top["snippet_html"]).lower()
    assert word.lower() in marked


def test_hit_shape(sample_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hit = search(sample_index, capsys, "cloud")[0]
    assert {"id", "path", "title", "date", "tags", "score", "snippet_html"} <= set(hit)


def test_known_items_of_the_sample_corpus(sample_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import SAMPLE_CORPUS

    rows = [line.rstrip("\n").split("\t") for line in (SAMPLE_CORPUS / "KNOWN_ITEMS.tsv").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    for query, doc_id in rows:
        assert search(sample_index, capsys, query)[0]["id"] == doc_id, query


def load_queries() -> list[tuple[str, str, set[str]]]:
    rows = []
    for line in QUERIES_DEV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            qid, query, rel = line.split("\t")
            rows.append((qid, query, set(rel.split(","))))
    return rows


def reciprocal_rank(ids: list[str], relevant: set[str]) -> float:
    return next((1 / i for i, d in enumerate(ids[:10], 1) if d in relevant), 0.0)


def test_queries_dev_mrr(shared_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = load_queries()
    rr = [reciprocal_rank([h["id"] for h in search(shared_index, capsys, q)], rel) for _, q, rel in rows]
    mrr = sum(rr) / len(rr)
    assert mrr >= 0.9, f"MRR@10 = {mrr:.3f}"
