"""Scale-out: an index built once, published atomically, picked up by running services."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx

from indexer.search import REFRESH_SECONDS
from service.cli import main
from tests.conftest import SAMPLE_CORPUS, build_index, start_server

EXTRA = """---
title: Un communiqué ajouté dans la nouvelle version de l'index
date: 2025-05-05 10:00:00 +02:00
---

Le mot ornithorynque n'existe que dans cette version.
"""


def test_publish_swaps_the_index_under_running_workers(tmp_path: Path, sample_index: Path) -> None:
    v1 = tmp_path / "index-v1"
    shutil.copytree(sample_index, v1)
    src = tmp_path / "src" / "communiques"
    src.mkdir(parents=True)
    (src / "ajout.md").write_text(EXTRA, encoding="utf-8")
    v2 = build_index(tmp_path / "index-v2", SAMPLE_CORPUS, src.parent)
    link = tmp_path / "current"
    assert main(["publish", str(v1), "--index", str(link)]) == 0
    server = start_server(link, workers=2)
    try:
        def totals(n: int = 12) -> list[int]:
            """What ``n`` requests in a row find (new connections: either worker answers)."""
            return [httpx.get(server.url + "/api/search", params={"q": "ornithorynque "},
                              timeout=30).json()["total"] for _ in range(n)]

        assert totals() == [0] * 12
        assert main(["publish", str(v2), "--index", str(link)]) == 0
        # Each worker looks at the link at most every REFRESH_SECONDS; the first request
        # after that opens the new index before it answers.
        time.sleep(REFRESH_SECONDS * 2)
        assert totals() == [1] * 12
        assert main(["publish", str(v1), "--index", str(link)]) == 0  # rollback
        time.sleep(REFRESH_SECONDS * 2)
        assert totals() == [0] * 12
    finally:
        server.stop()


def test_publish_refuses_what_is_not_an_index(tmp_path: Path, sample_index: Path, capsys) -> None:  # noqa: ANN001
    (tmp_path / "empty").mkdir()
    assert main(["publish", str(tmp_path / "empty"), "--index", str(tmp_path / "link")]) == 2
    assert "no index here" in capsys.readouterr().err
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["publish", str(sample_index), "--index", str(folder)]) == 2
    assert "not a published link" in capsys.readouterr().err
