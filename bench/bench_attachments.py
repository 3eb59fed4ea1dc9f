"""Ingest with attachments, first run and again on the unchanged site (the text cache).

    python -m bench.bench_attachments --n 120

Builds a site of N communiqués, each with one attachment (PDF, DOCX, ODT, ODS, XLSX, PPTX in
turn, a few pages of text each), ingests it twice with ``communiques ingest --attachments-root``
into a new index, and prints the time and the number of attachments extracted each time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["pdf", "docx", "odt", "ods", "xlsx", "pptx"]
TEXT = ("Le programme interministériel accompagne les administrations dans la transformation "
        "numérique de leurs services publics, avec des crédits, des équipes et des outils. ")


def build(root: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.test_office_attachments import MAKERS

    docs, uploads = root / "communiques", root / "uploads"
    docs.mkdir(parents=True)
    uploads.mkdir()
    for i in range(n):
        fmt = FORMATS[i % len(FORMATS)]
        MAKERS[fmt](uploads / f"annexe-{i}.{fmt}", f"Annexe {i}. " + TEXT * 20)
        (docs / f"doc-{i}.md").write_text(
            f"---\ntitle: Communiqué {i}\ndate: 2024-01-02 10:00:00 +01:00\n"
            f"communique_file: /uploads/annexe-{i}.{fmt}\n---\n\n{TEXT}\n", encoding="utf-8")


def run(site: Path, index: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "ingest", str(site / "communiques"), "--index",
         str(index), "--attachments-root", str(site), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return time.perf_counter() - t0, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site, index = Path(tmp) / "site", Path(tmp) / "index"
        build(site, args.n)
        print("| run | documents | attachments extracted | from the cache | seconds |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name in ("first ingest", "unchanged site"):
            seconds, report = run(site, index)
            att = report["attachments"]
            print(f"| {name} | {args.n} | {att['extracted']} | {att['from_cache']} | "
                  f"{seconds:.1f} |")


if __name__ == "__main__":
    main()
