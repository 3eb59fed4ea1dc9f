"""Synthetic corpora in the site's real format, for scale tests and benchmarks.

Sentences, titles and tags are recombined from the embedded sample corpus (and the real corpus
beside the checkout when present); dates are spread over the years. Written to a folder of the
caller's choosing (a temporary one): generated corpora are never committed.

    python -m bench.synth OUT_DIR --n 10000 [--seed 1] [--body-chars 2500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import yaml

from indexer.document import parse_file
from indexer.ingest import find_files

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "corpus", ROOT.parent / "shared" / "corpus"]
COLLECTIONS = ("communiques", "actualites", "evenements")


def load_material(sources: list[Path] | None = None) -> tuple[list[str], list[str], list[list[str]]]:
    """Sentences, titles and tag lists of the available corpora."""
    sentences: list[str] = []
    titles: list[str] = []
    tag_sets: list[list[str]] = []
    for src in sources or SOURCES:
        if not src.is_dir():
            continue
        for path in find_files([src]):
            try:
                doc = parse_file(path)
            except Exception:  # noqa: BLE001, S112 - material only; a bad file is skipped
                continue
            titles.append(doc.title)
            if doc.tags:
                tag_sets.append(doc.tags)
            for s in re.split(r"(?<=[.!?])\s+", doc.chapeau + "\n" + doc.body):
                s = " ".join(s.split())
                if 40 <= len(s) <= 400:
                    sentences.append(s)
    return sentences, titles, tag_sets


def generate(out: Path, n: int, seed: int = 1, body_chars: int = 2500,
             first: int = 0) -> list[Path]:
    """Write ``n`` documents under ``out/<collection>/``, numbered from ``first`` (so that
    corpora generated apart can be ingested into one index); returns their paths."""
    rng = random.Random(seed)
    sentences, titles, tag_sets = load_material()
    title_words = [t.split() for t in titles]
    start = dt.datetime(2010, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    span = (dt.datetime(2025, 12, 31, tzinfo=start.tzinfo) - start).total_seconds()
    paths = []
    for i in range(n):
        a, b = rng.choice(title_words), rng.choice(title_words)
        title = " ".join(a[: max(2, len(a) // 2)] + b[len(b) // 2 :])
        body: list[str] = []
        while sum(len(s) for s in body) < body_chars:
            body.append(rng.choice(sentences))
        paragraphs = ["\n".join(body[k : k + 3]) for k in range(0, len(body), 3)]
        meta = {
            "title": title,
            "date": (start + dt.timedelta(seconds=rng.random() * span)).strftime("%Y-%m-%d %H:%M:%S +01:00"),
            "categories": [rng.choice(["Communiqué de presse", "Article", "Évènement"])],
            "chapeau-text": rng.choice(sentences),
        }
        if rng.random() < 0.85 and tag_sets:
            meta["tags"] = rng.choice(tag_sets)
        collection = COLLECTIONS[(first + i) % 3]
        folder = out / collection
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"synth-{first + i:06d}.md"
        front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
        front = front.replace(f"date: '{meta['date']}'", f"date: {meta['date']}")
        path.write_text(f"---\n{front}---\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@lru_cache(maxsize=1)
def _light_pipeline():  # noqa: ANN202 - spacy.Language, imported lazily
    """spaCy's French tokenizer followed by the project's words component (built once)."""
    import spacy
    from spacy.language import Language

    from indexer import analysis

    nlp = spacy.blank("fr")
    if not Language.has_factory(analysis.WORDS_COMPONENT):
        Language.component(analysis.WORDS_COMPONENT, func=analysis._attach_words)
    nlp.add_pipe(analysis.WORDS_COMPONENT, last=True)
    return nlp


@contextmanager
def light_analysis() -> Iterator[None]:
    """Within this block, the French analysis runs without spaCy's trained components: the
    French tokenizer and the project's own words component (folded forms, stems, offsets),
    but no tagger or lemmatiser, so no lemma terms.

    Everything else is the real path: ``ingest()`` reads the files, hashes, parses, streams
    the texts through ``nlp.pipe`` and the words component, writes, commits in batches and
    consolidates segments. For scale tests and benchmarks of what lies downstream of the
    analysis (search, export, facets, memory), where lemmatising 10,000 documents would cost
    minutes and measure nothing more. The pipeline in place before is restored on exit.
    """
    from indexer import analysis

    pipeline = analysis._pipeline
    previous = pipeline._nlp
    pipeline._nlp = _light_pipeline()
    try:
        yield
    finally:
        pipeline._nlp = previous


def build_light_index(source: Path, index_dir: Path, commit_every: int | None = None,
                      optimize: bool = False) -> int:
    """Index a synthetic corpus through ``ingest()`` under :func:`light_analysis`: in one
    commit or, with ``commit_every``, in batches of that many documents as ``communiques
    ingest`` commits them; ``optimize`` merges the segments into one, as ``ingest --optimize``.

    Returns the number of documents written; a rejected file is an error (the generated
    corpus is valid by construction).
    """
    from indexer.ingest import ingest
    from indexer.schema import open_index

    ix = open_index(index_dir, create=True)
    with light_analysis():
        report = ingest(ix, [source], batch_size=commit_every or 10**9, progress=False,
                        optimize=optimize)
    if report.rejected:
        raise ValueError(f"{source}: {len(report.rejected)} file(s) rejected: "
                         f"{report.rejected[:3]}")
    return len(report.added) + len(report.updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--body-chars", type=int, default=2500)
    args = parser.parse_args()
    paths = generate(args.out, args.n, args.seed, args.body_chars)
    print(f"{len(paths)} documents written under {args.out}")


if __name__ == "__main__":
    main()
