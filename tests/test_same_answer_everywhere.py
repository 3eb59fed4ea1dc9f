"""Two workers answer the same request the same way: nothing a response holds (hits and their
order, highlights, facets, notes, "Essayez avec…", completions) may depend on the order a
process happens to iterate its sets in (Python's string hashing differs from process to
process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from dataclasses import asdict
from pathlib import Path
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
si = SearchIndex(open_index(Path(sys.argv[1])), preload=False)
out = {}
for q in json.loads(sys.argv[2]):
    d = asdict(si.search(SearchRequest(q=q, drafts=True)))
    d.pop("took_ms")
    out[q] = [d, si.autocomplete(q[:4])]
print(json.dumps(out, sort_keys=True, default=str))
"""

QUERIES = ["numérique", "numériques de l'État", "covid télétravail", "DINUM", "dinsic",
           "données ouvertes", "open data", "cloud souverain", "identité num", "cybersécurté",
           "franceconnect", "accessibilite", "mairies", "etat plateforme", "Covid-19 outils",
           "gouvernement accélère numérisation"]


def test_every_process_gives_the_same_response(sample_index: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    outs = {
        subprocess.run(
            [sys.executable, "-c", SCRIPT, str(sample_index), json.dumps(QUERIES)],
            capture_output=True, text=True, check=True, cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outs) == 1
