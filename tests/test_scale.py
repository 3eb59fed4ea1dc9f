"""Scale: a streamed export of 10,000 synthetic documents, in bounded memory."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import httpx
import pytest

from bench.synth import build_light_index, generate
from tests.conftest import start_server

N = 10_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_export_of_10k_documents_streams_in_bounded_memory(tmp_path: Path) -> None:
    generate(tmp_path / "corpus", N, body_chars=300)
    assert build_light_index(tmp_path / "corpus", tmp_path / "index") == N
    server = start_server(tmp_path / "index")
    try:
        assert httpx.get(server.url + "/health").json()["documents"] == N
        before = rss_mb(server.proc.pid)
        peak, lines, first_at = before, 0, None
        t0 = time.monotonic()
        with httpx.stream("GET", server.url + "/api/export", params={"format": "jsonl"},
                          timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line:
                    continue
                if first_at is None:
                    first_at = time.monotonic() - t0
                json.loads(line)
                lines += 1
                if lines % 1000 == 0:
                    peak = max(peak, rss_mb(server.proc.pid))
        assert lines == N
        # Streaming: memory grows by far less than the export's own size would need.
        assert peak - before < 150, f"RSS grew from {before:.0f} MB to {peak:.0f} MB"
        r = httpx.get(server.url + "/api/export", params={"format": "csv", "q": "numérique"},
                      timeout=120)
        csv_rows = len(list(csv.reader(io.StringIO(r.text))))
        total = httpx.get(server.url + "/api/search", params={"q": "numérique"}).json()["total"]
        assert csv_rows == total + 1
    finally:
        server.stop()
