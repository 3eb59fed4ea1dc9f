"""Every benchmark runs end to end on tiny inputs (not timed), so none of them can rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_bench(*args: str, timeout: int = 300) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("bench.bench_search", "--sizes", "150", "--queries", "12", "--body-chars", "400",
          "--http"), "bare p95 / ours p95"),
        (("bench.bench_ingest", "--n", "12", "--jobs", "1"), "communiques ingest"),
        (("bench.bench_load", "--n", "150", "--clients", "2", "--seconds", "2", "--workers", "1"),
         "requests/s"),
        (("bench.bench_suggest", "-n", "3"), "model"),
        (("bench.bench_hostile", "--n", "60", "--body-chars", "300", "--repeat", "1",
          "--workers", "1"), "slowest:"),
        (("bench.bench_query_analysis", "--synthetic", "150", "--queries-count", "12",
          "--rounds", "1"), "lemma table"),
        (("bench.cluster_ingest", "--n", "20", "--rounds", "1"), "per-core rate"),
        (("bench.scale_growth", "--sizes", "40,80", "--queries", "12", "--body-chars", "300"),
         "RSS per worker"),
    ],
    ids=["search", "ingest", "load", "suggest", "hostile", "query-analysis", "cluster",
         "growth"],
)
def test_benchmark_smoke(args: tuple[str, ...], expect: str) -> None:
    assert expect in run_bench(*args)
