"""The tag-model poisoning attempt, replayed against ``serve --workers 2``.

An anonymous attacker posts feedback that accepts a fake tag and rejects the real ones on every
document (as JSON, as a cross-site ``text/plain`` form from a foreign ``Origin``, and as large
bodies meant to fill the disk); then the model is retrained with ``--feedback``. What must hold:
no anonymous or cross-site post is stored, the log does not grow, and the retrained model never
suggests the fake tag. An editor's own feedback is still taken.

    python -m bench.poisoning [--posts 66] [--big 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
KEY = "poisoning-bench-key-0123456789"
FAKE = "Tag inventé par un attaquant"


def _serve(index: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--port", str(port),
         "--workers", "2", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "COMMUNIQUES_LOG_LEVEL": "WARNING", **env},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)  # 503 while loading
    proc.kill()
    raise RuntimeError("the service did not start")


def _suggest(model: Path, files: list[Path]) -> Counter[str]:
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "suggest", "--model", str(model), "--k", "10",
         *map(str, files)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout
    found: Counter[str] = Counter()
    for line in out.splitlines():
        for tag in json.loads(line).get("tags") or []:
            found[tag.get("tag", "")] += 1
    return found


def run(posts: int, big: int, corpus: Path) -> dict[str, object]:
    from tests.conftest import free_port

    work = Path(tempfile.mkdtemp(prefix="poisoning-"))
    index, model, log = work / "index", work / "model.pkl", work / "feedback.jsonl"
    subprocess.run([sys.executable, "-m", "service.cli", "ingest", str(corpus), "--index",
                    str(index), "--quiet"], cwd=ROOT, check=False, capture_output=True)
    port = free_port()
    env = {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_FEEDBACK": str(log),
           "COMMUNIQUES_RATE_WRITE": "off", "COMMUNIQUES_INDEX": str(index)}
    proc = _serve(index, port, env)
    base = f"http://127.0.0.1:{port}"
    statuses: Counter[str] = Counter()
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            ids = [r["id"] for r in client.get("/api/search", params={"size": 100}).json()["hits"]]
            for i in range(posts):
                doc_id = ids[i % len(ids)]
                body = {"doc_id": doc_id, "accepted": [FAKE], "rejected": ["Cloud", "Open data"]}
                statuses["anonymous JSON " + str(client.post("/api/tags/feedback",
                                                             json=body).status_code)] += 1
                r = client.post("/api/tags/feedback", content=json.dumps(body), headers={
                    "Content-Type": "text/plain", "Origin": "https://attaquant.example"})
                statuses["cross-site text/plain " + str(r.status_code)] += 1
            filler = {"title": "x", "text": "mot " * 100_000, "accepted": [FAKE]}
            for _ in range(big):
                r = client.post("/api/tags/feedback", json=filler)
                statuses["anonymous 400 kB " + str(r.status_code)] += 1
            size_after_attack = log.stat().st_size if log.exists() else 0
            editor = client.post("/api/tags/feedback", headers={"Authorization": f"Bearer {KEY}"},
                                 json={"doc_id": ids[0], "accepted": ["Cloud"]})
            statuses["editor JSON " + str(editor.status_code)] += 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    subprocess.run([sys.executable, "-m", "service.cli", "train", "--corpus", str(corpus),
                    "--model", str(model), "--feedback", str(log)], cwd=ROOT, check=True,
                   capture_output=True)
    files = sorted(corpus.rglob("*.md"))[:40]
    suggested = _suggest(model, files)
    return {"statuses": dict(statuses), "log_bytes_after_attack": size_after_attack,
            "fake_tag_suggested": suggested.get(FAKE, 0), "documents_checked": len(files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=66)
    parser.add_argument("--big", type=int, default=200)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    args = parser.parse_args()
    result = run(args.posts, args.big, args.corpus)
    rows = [[k, v] for k, v in sorted(result["statuses"].items())]  # type: ignore[union-attr]
    print_table(["request", "count"], rows)
    print(f"feedback log after the attack: {result['log_bytes_after_attack']} bytes; "
          f"fake tag suggested for {result['fake_tag_suggested']} of "
          f"{result['documents_checked']} documents after retraining")


if __name__ == "__main__":
    main()
