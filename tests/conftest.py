"""Shared fixtures: the sample and real corpora, indexes built once, and a live service."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.net import free_port

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = ROOT / "corpus"
SHARED = Path(os.environ.get("COMMUNIQUES_SHARED", ROOT.parent / "shared"))
SHARED_CORPUS = SHARED / "corpus"
QUERIES_DEV = SHARED / "queries-dev.tsv"

GOOD = """---
title: {title}
date: 2021-03-04 10:00:00 +01:00
tags:
- Cloud
---

{body}
"""
"""A minimal valid communiqué: ``GOOD.format(title=..., body=...)``."""


def require_shared() -> Path:
    """The real corpus beside the checkout: skipped when absent, a failure under CI=true."""
    if SHARED_CORPUS.is_dir():
        return SHARED_CORPUS
    reason = f"real corpus not found at {SHARED_CORPUS} (../shared/corpus beside the checkout)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " — required under CI=true")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    return require_shared()


def build_index(folder: Path, *sources: Path) -> Path:
    from indexer.ingest import ingest
    from indexer.schema import open_index

    ix = open_index(folder, create=True)
    report = ingest(ix, list(sources), progress=False)
    assert not report.rejected, report.rejected
    return folder


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("sample-index"), SAMPLE_CORPUS)


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory: pytest.TempPathFactory, shared_corpus: Path) -> Path:
    return build_index(tmp_path_factory.mktemp("shared-index"), shared_corpus)


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A tag model trained on the sample corpus (None until the tag commands exist)."""
    try:
        import models.commands  # noqa: F401
    except ImportError:
        return None
    from service.cli import main

    path = tmp_path_factory.mktemp("model") / "model.pkl"
    assert main(["train", "--corpus", str(SAMPLE_CORPUS), "--model", str(path)]) == 0
    return path


class LiveServer:
    """The real service under uvicorn on a free loopback port, in its own process."""

    def __init__(self, index: Path, env: dict[str, str] | None = None, workers: int = 1,
                 args: tuple[str, ...] = (), timeout: float = 120) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        # Write processes start at the first write (7 s less per start of a two-worker
        # service on a busy machine); tests of writes under load ask for the default.
        full_env = {**os.environ, "COMMUNIQUES_INDEX": str(index),
                    "COMMUNIQUES_WRITE_WARM": "0", **(env or {})}
        # ``communiques serve``, as operators start it (several workers share one port).
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--index", str(index),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
             "--log-level", "warning", *args],
            cwd=ROOT, env=full_env,
        )
        # /health answers 503 until the worker that answers has finished loading (spaCy, the
        # longest posting lists), then 200.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"service did not start within {timeout:.0f} s")
        # Each answer comes from any worker: several in a row must say that it has loaded.
        ready = 0
        while time.monotonic() < deadline and ready < 4 * workers:
            try:  # a worker loading spaCy may answer late on a busy machine: ask again
                ok = httpx.get(self.url + "/health", timeout=10).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                ready += 1
            else:
                ready = 0
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def get_eventually(url: str, headers: dict[str, str] | None = None, status: int = 200,
                   timeout: float = 15) -> httpx.Response:
    """GET ``url`` until it answers ``status``: with several workers, the one that did not take
    a write opens the new index generation a moment after the commit, as a reader meets it."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url, headers=headers, timeout=30)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def start_server(index: Path, env: dict[str, str] | None = None, workers: int = 1,
                 args: tuple[str, ...] = (), timeout: float = 120) -> LiveServer:
    """``communiques serve --index INDEX --workers N ARGS...`` on a free port, once ready."""
    return LiveServer(index, env, workers, args, timeout)


@pytest.fixture(scope="session")
def live_env(tmp_path_factory: pytest.TempPathFactory, sample_model: Path | None) -> dict[str, str]:
    var = tmp_path_factory.mktemp("live-var")
    env = {
        "COMMUNIQUES_FEEDBACK": str(var / "feedback.jsonl"),
        "COMMUNIQUES_DOCUMENTS": str(var / "documents"),
        "COMMUNIQUES_API_KEY": "test-key-123",
    }
    if sample_model is not None:
        env["COMMUNIQUES_MODEL"] = str(sample_model)
    return env


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, live_env: dict[str, str]) -> Iterator[str]:
    """Base URL of a service over its own copy of the sample-corpus index (tests may write)."""
    index = build_index(tmp_path_factory.mktemp("live-index"), SAMPLE_CORPUS)
    server = start_server(index, live_env)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def shared_server(shared_index: Path, live_env: dict[str, str]) -> Iterator[str]:
    """Base URL of a service over the real corpus."""
    server = start_server(shared_index, live_env)
    yield server.url
    server.stop()
