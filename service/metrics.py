"""Request metrics in Prometheus' format, the same whichever worker answers ``/metrics``.

``communiques serve`` makes a private folder for ``prometheus_client``'s multiprocess mode and
names it in ``PROMETHEUS_MULTIPROC_DIR`` before its workers start: each worker writes its
counts to its own files there, and ``/metrics`` adds up every worker's files, so a scraper sees
the service's totals, not one worker's share. Outside ``serve`` (one process, the test client)
the counts live in the process, as usual.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "communiques_requests_total", "HTTP requests by method, route and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "communiques_request_seconds", "HTTP request latency.", ["method", "route"],
    buckets=LATENCY_BUCKETS,
)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request. ``route`` is the route's template (``/api/documents/{doc_id}``),
    never the raw path, so that the number of series stays bounded."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text a scraper reads, and its content type: every worker's counts added up."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
