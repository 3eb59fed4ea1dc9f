"""Small corpora written by the tests of what a query means (synonyms, acronyms, compounds,
relaxed queries, query-language promises), and an in-process search over them."""

from __future__ import annotations

from pathlib import Path

from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest, SearchResult
from tests.conftest import build_index

DOC = """---
title: "{title}"
date: {date} 10:00:00 +01:00
tags:
- {tag}
categories:
- Communiqué de presse
---

{body}
"""


def write_corpus(folder: Path, docs: dict[str, tuple[str, ...]], collection: str = "communiques",
                 tag: str = "Numérique") -> Path:
    """``docs``: id → (title, body) or (title, body, date); by default dates a year apart
    from 2016, in id order."""
    root = folder / "corpus" / collection
    root.mkdir(parents=True, exist_ok=True)
    for i, (doc_id, (title, body, *day)) in enumerate(sorted(docs.items())):
        date = day[0] if day else f"{2016 + i % 9}-0{1 + i % 9}-1{i % 9}"
        (root / f"{doc_id}.md").write_text(
            DOC.format(title=title, body=body, date=date, tag=tag), encoding="utf-8")
    return folder / "corpus"


def index_of(folder: Path, docs: dict[str, tuple[str, ...]]) -> Path:
    return build_index(folder / "index", write_corpus(folder, docs))


def searcher(index: Path) -> SearchIndex:
    return SearchIndex(open_index(index), preload=False)


def search(si: SearchIndex, q: str, **kw: object) -> SearchResult:
    return si.search(SearchRequest(q=q, **kw))


def ids(result: SearchResult) -> list[str]:
    return [h.id for h in result.hits]
