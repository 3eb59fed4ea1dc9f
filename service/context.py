"""What a service worker opens once and shares between requests."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from indexer.schema import default_index_dir, open_index
from indexer.search import SearchIndex
from service.limits import DEFAULT_RATES, Rate
from service.write_process import DEFAULT_NICE, WriteProcess

DEFAULT_MODEL = "var/model.pkl"
DEFAULT_FEEDBACK = "var/feedback.jsonl"


@dataclass
class Settings:
    """Service settings, from the environment (``COMMUNIQUES_*``) unless given."""

    index_dir: Path = field(default_factory=default_index_dir)
    model_path: Path = field(
        default_factory=lambda: Path(os.environ.get("COMMUNIQUES_MODEL", DEFAULT_MODEL))
    )
    feedback_path: Path = field(
        default_factory=lambda: Path(os.environ.get("COMMUNIQUES_FEEDBACK", DEFAULT_FEEDBACK))
    )
    documents_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("COMMUNIQUES_DOCUMENTS", "var/documents"))
    )
    api_key: str = field(default_factory=lambda: os.environ.get("COMMUNIQUES_API_KEY", ""))
    """The writers' key (editors): writes, tag feedback; it also reads drafts."""
    read_key: str = field(default_factory=lambda: os.environ.get("COMMUNIQUES_READ_KEY", ""))
    """The readers' key (archivists): drafts are shown to its holders (see :mod:`service.auth`)."""
    feedback_max_mb: float = field(
        default_factory=lambda: float(os.environ.get("COMMUNIQUES_FEEDBACK_MAX_MB", "20"))
    )
    """Size at which the feedback log stops taking records (train, then rotate it)."""
    site_origin: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_SITE_ORIGIN", "")
    )
    max_body_bytes: int = field(
        default_factory=lambda: int(os.environ.get("COMMUNIQUES_MAX_BODY_BYTES", "1000000"))
    )
    rate_export: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_RATE_EXPORT", DEFAULT_RATES["export"])
    )
    rate_suggest: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_RATE_SUGGEST", DEFAULT_RATES["suggest"])
    )
    rate_write: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_RATE_WRITE", DEFAULT_RATES["write"])
    )
    rate_editor: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_RATE_EDITOR", DEFAULT_RATES["editor"])
    )
    """Per-client rate limits, ``N/SECONDS`` or ``off`` (see :mod:`service.limits`)."""
    rate_storage: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_RATE_STORAGE", "memory://")
    )
    """Where the rate limits count, as a ``limits`` storage URI. ``serve`` sets it to a SQLite
    file of its own (``sqlite:///...``) that all its workers share; ``memory://`` counts in one
    process only; ``redis://...`` shares the count between machines."""
    trusted_proxies: str = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_TRUSTED_PROXIES", "")
    )
    """Addresses or networks (comma-separated, ``*`` for any) of the reverse proxies whose
    ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed. Empty (the default): none, and the
    client is the connection's address."""

    write_nice: int = field(
        default_factory=lambda: int(os.environ.get("COMMUNIQUES_WRITE_NICE",
                                                   str(DEFAULT_NICE)))
    )
    """How much lower the priority of the API's write process is than the serving worker's
    (0–19, see :mod:`service.write_process`)."""
    write_warm: bool = field(
        default_factory=lambda: os.environ.get("COMMUNIQUES_WRITE_WARM", "1") != "0"
    )
    """Start each worker's write process with the worker, spaCy loaded, before ``/health``
    says ready (the default); ``0``: at the first write, which then waits for it (seconds)."""

    def rates(self) -> dict[str, Rate | None]:
        """The rate of each class of route; a malformed value names its variable."""
        rates: dict[str, Rate | None] = {}
        for name in DEFAULT_RATES:
            try:
                rates[name] = Rate.parse(getattr(self, f"rate_{name}"))
            except ValueError as exc:
                raise ValueError(f"COMMUNIQUES_RATE_{name.upper()}: {exc}") from None
        return rates

    def proxies(self) -> list[str]:
        """The trusted proxies, as a list (empty: none)."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]


class AppContext:
    """The index (opened once per worker, refreshed on commit), settings and shared caches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ix = open_index(settings.index_dir, create=True)
        self.search = SearchIndex(self.ix, path=settings.index_dir)
        self.writes = WriteProcess(settings.write_nice)
        """API writes run there, off this worker's interpreter lock."""
        self.lock = threading.Lock()
        self.cache: dict[str, Any] = {}
        """Per-worker objects loaded on first use (the tag model, keyed by its file's mtime)."""


def get_context(request: Request) -> AppContext:
    return request.app.state.ctx
