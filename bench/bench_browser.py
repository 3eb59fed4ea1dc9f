"""Keystroke → results drawn, in headless Chromium, at 10,000 documents.

    python -m bench.bench_browser [--docs 10000] [--words 40] [--workers 2]

Builds a synthetic corpus in the real format (``bench.synth``, light analysis), starts
``communiques serve`` on it, opens the search page in Debian's Chromium (Playwright) and types
title words letter by letter, one key every 120 ms (a brisk typist), as a visitor would. For
each keystroke: the time from the key's ``keydown`` to the moment the page has swapped in the
server-rendered fragment for that very text (the script's ``search:rendered`` event), measured
inside the page with ``performance.now()``, the next frame included. Keys whose request was
aborted by a later key count only if their text was drawn; the box's last text always is.
Prints p50 / p95 / max; the target is p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.synth import build_light_index, generate
from bench.table import percentile, print_table
from indexer.document import parse_file
from indexer.ingest import find_files

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

PROBE = """
() => {
  window.__keys = {};
  window.__drawn = {};
  const box = document.getElementById('q');
  box.addEventListener('keydown', () => {
    // the text this key will make, read once the input event has run
    const t0 = performance.now();
    setTimeout(() => { window.__keys[box.value] = window.__keys[box.value] || t0; }, 0);
  }, true);
  document.addEventListener('search:rendered', (e) => {
    const q = new URLSearchParams(e.detail.query).get('q') || '';
    requestAnimationFrame(() => { window.__drawn[q] = window.__drawn[q] || performance.now(); });
  });
}
"""


def serve(index: Path, workers: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).json().get("analysis") == "full":
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the service did not start")


def words_to_type(docs: list, n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        title = re.sub(r"[\"()«»:’',;!?]", " ", rng.choice(docs).title)
        words = [w for w in title.split() if len(w) > 4]
        if words:
            out.append(" ".join(words[:2]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=40, help="queries typed letter by letter")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--delay", type=int, default=120, help="ms between keys")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the corpus and index here, and reuse them when present")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        work = args.workdir or Path(tmp)
        corpus, index = work / "corpus", work / "index"
        t = time.perf_counter()
        if not (index / "done").exists():
            generate(corpus, args.docs)
            build_light_index(corpus, index, optimize=True)
            (index / "done").touch()
        print(f"corpus of {args.docs:,} documents indexed in {time.perf_counter() - t:.0f} s",
              flush=True)
        docs = [parse_file(p) for p in itertools.islice(find_files([corpus]), 2000)]
        queries = words_to_type(docs, args.words)
        proc, base = serve(index, args.workers)
        latencies: list[float] = []
        missing = 0
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(base + "/")
                for q in ["warm"] + queries:
                    page.goto(base + "/")
                    page.evaluate(PROBE)
                    box = page.locator("#q")
                    box.click()
                    box.press_sequentially(q, delay=args.delay)
                    page.wait_for_function(
                        "q => (window.__drawn || {})[q] !== undefined", arg=q, timeout=10_000)
                    page.wait_for_timeout(300)
                    keys, drawn = page.evaluate("[window.__keys, window.__drawn]")
                    if q == "warm":
                        continue
                    for text, t0 in keys.items():
                        if text in drawn:
                            latencies.append(drawn[text] - t0)
                        else:
                            missing += 1
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    lat = sorted(latencies)
    print_table(
        ["documents", "keystrokes drawn", "superseded", "p50 ms", "p95 ms", "max ms", "p95 ≤ 100 ms"],
        [[f"{args.docs:,}", str(len(lat)), str(missing), f"{percentile(lat, 50):.1f}",
          f"{percentile(lat, 95):.1f}", f"{lat[-1]:.1f}",
          "yes" if percentile(lat, 95) <= 100 else "no"]],
    )


if __name__ == "__main__":
    main()
