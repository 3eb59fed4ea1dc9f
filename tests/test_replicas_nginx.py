"""Replicas behind nginx: new index builds published and rolled back under load, the health
answer a balancer acts on, and the deployment files of ``deploy/``, which are the ones run here.

Three ``communiques serve`` replicas (the ExecStart options of ``deploy/communiques@.service``
and the variables of ``deploy/communiques.env``, paths moved under a temporary folder) read one
published link; Debian's nginx runs ``deploy/nginx/communiques.conf`` in front of them, with only
its ports replaced, as a child process under a temporary prefix. The longer run is
``make replicas`` (``bench/replicas.py``, figures in bench/RESULTS.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.bench_search import workload
from bench.replicas import (
    EXTRA_DOC,
    SITE_CONF,
    UNIT,
    LinkWatch,
    Load,
    Nginx,
    Probes,
    exec_start,
    nginx_binary,
    publish,
    read_unit,
    render_site,
    serve_options,
    switches,
    unit_env,
)
from service.auth import SESSION_COOKIE
from tests.conftest import ROOT, SAMPLE_CORPUS, LiveServer, start_server

READ_KEY = "cle-archives-0123456789"
EXPORTS_PER_MINUTE = 3


def require_nginx() -> str:
    """Debian's nginx: skipped when absent, a failure under CI=true (``make test`` installs it
    with scripts/install-nginx.sh)."""
    path = nginx_binary()
    if path:
        return path
    reason = "nginx is not installed (scripts/install-nginx.sh installs Debian's package)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " — required under CI=true")
    pytest.skip(reason)


# --- the deployment files -------------------------------------------------------------------


def test_the_unit_starts_serve_with_options_it_has() -> None:
    from service.cli import build_parser

    service = read_unit(UNIT)["Service"]
    argv = exec_start(8001)
    assert argv[:2] == ["/opt/communiques/.venv/bin/communiques", "serve"], argv
    assert service["WorkingDirectory"] == ["/opt/communiques"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["communiques"] == "service.cli:main"
    args = build_parser().parse_args(argv[1:])  # an option `serve` lacks exits here
    assert args.func.__name__ == "cmd_serve"
    assert (args.index, args.host, args.port) == (Path("/srv/communiques/current"),
                                                   "127.0.0.1", 8001)
    assert "127.0.0.1" in args.trusted_proxies.split(","), "nginx on this machine is believed"
    assert service["EnvironmentFile"] == ["/etc/communiques/env"]
    assert service["Restart"] == ["on-failure"]
    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert service[option] == ["yes"], option
    assert service["ProtectSystem"] == ["strict"]
    assert service["CapabilityBoundingSet"] == [""]
    # The rate limits' shared file is in the unit's state folder, the one place it may write.
    env = unit_env({})
    assert service["StateDirectory"] == ["communiques"]
    assert env["COMMUNIQUES_RATE_STORAGE"].startswith("sqlite:////var/lib/communiques/")
    # Every variable the env file sets is one the service reads (no typo goes unnoticed).
    code = "".join(p.read_text(encoding="utf-8") for folder in ("service", "indexer", "models")
                   for p in (ROOT / folder).rglob("*.py"))
    for name in env:
        assert f'"{name}"' in code, f"{name} is read nowhere"
    assert "COMMUNIQUES_API_KEY" not in env, "replicas do not write"
    verify = shutil.which("systemd-analyze")
    if verify:  # where systemd is installed: its own check of the unit's syntax
        proc = subprocess.run([verify, "verify", "--man=no", str(UNIT)],
                              capture_output=True, text=True, timeout=60)
        assert "Unknown key" not in proc.stderr and "Invalid" not in proc.stderr, proc.stderr


def test_nginx_and_the_unit_name_the_same_replicas() -> None:
    """The upstream's ports are the unit's instances that the README enables."""
    ports = re.findall(r"^\s*server 127\.0\.0\.1:(\d+)", SITE_CONF.read_text(), re.M)
    assert len(ports) >= 2
    enable = " ".join(f"communiques@{p}" for p in ports)
    assert f"systemctl enable --now {enable}" in (ROOT / "README.md").read_text()


def test_the_shipped_site_is_run_with_only_its_ports_replaced() -> None:
    require_nginx()
    shipped = SITE_CONF.read_text()
    rendered = render_site(18080, [18001, 18002, 18003])
    changed = [(a, b) for a, b in zip(shipped.splitlines(), rendered.splitlines(), strict=True)
               if a != b]
    assert changed == [
        *((f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;",
           f"    server 127.0.0.1:{q} max_fails=3 fail_timeout=10s;")
          for p, q in ((8001, 18001), (8002, 18002), (8003, 18003))),
        ("    listen 80;", "    listen 127.0.0.1:18080;"),
    ]
    nginx = Nginx([18001, 18002])
    try:
        check = nginx.check()
        assert check.returncode == 0, check.stderr
    finally:
        nginx.remove()


# --- health for balancers -------------------------------------------------------------------


def test_health_is_503_until_the_replica_has_loaded(sample_index: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    import indexer.analysis
    from indexer.search import SearchIndex
    from service.app import create_app
    from service.context import Settings

    # An index written before the lemma table, while spaCy loads (with the table, queries
    # never need spaCy: tests/test_worker_memory.py).
    monkeypatch.setattr(SearchIndex, "needs_spacy", lambda self, engine=None: True)
    monkeypatch.setattr(indexer.analysis, "analysis_ready", lambda: False)
    app = create_app(Settings(index_dir=sample_index, documents_dir=tmp_path / "docs"))
    with TestClient(app) as client:
        r = client.get("/health")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "2"
        assert r.json()["status"] == "loading" and r.json()["analysis"] == "light"
        assert r.json()["documents"] > 0
        assert client.head("/health").status_code == 503
        # Searches are answered meanwhile (light analysis): only a balancer holds back.
        assert client.get("/api/search", params={"q": "numérique"}).status_code == 200

        monkeypatch.setattr(indexer.analysis, "analysis_ready", lambda: True)
        deadline = time.monotonic() + 60  # the longest posting lists read after the start
        while (r := client.get("/health")).status_code != 200 and time.monotonic() < deadline:
            assert r.json()["postings"] == "loading", r.json()
            time.sleep(0.05)
        assert r.status_code == 200, r.text
        assert r.json() | {"documents": 0} == {"status": "ok", "documents": 0,
                                                "analysis": "full", "postings": "ready"}
        assert "retry-after" not in r.headers
        # Ready for good: a new generation (a commit, a publication) reads its posting lists
        # ahead on every replica at once, and is not a reason to take them all out.
        app.state.ctx.search._engine.preloaded.clear()
        r = client.get("/health")
        assert r.status_code == 200 and r.json()["postings"] == "loading", r.json()


# --- replicas behind nginx ------------------------------------------------------------------


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, sample_index: Path) -> tuple[Path, Path]:
    """Build A (the sample corpus) and build B (A and one document that holds MARKER)."""
    require_nginx()
    from indexer.ingest import ingest
    from indexer.schema import open_index

    folder = tmp_path_factory.mktemp("builds")
    a, b = folder / "build-a", folder / "build-b"
    shutil.copytree(sample_index, a)
    shutil.copytree(a, b)
    extra = folder / "extra" / "communiques"
    extra.mkdir(parents=True)
    (extra / "ajout.md").write_text(EXTRA_DOC, encoding="utf-8")
    report = ingest(open_index(b), [extra.parent], progress=False)
    assert len(report.added) == 1 and not report.rejected, report.rejected
    return a, b


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory, builds: tuple[Path, Path]) -> Path:
    link = tmp_path_factory.mktemp("srv") / "current"
    publish(builds[0], link)
    return link


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, link: Path) -> Iterator[list[LiveServer]]:
    """Three replicas as the unit starts them, with the env file's variables, started together."""
    state = tmp_path_factory.mktemp("state")
    env = {
        **unit_env({"/srv/communiques": link.parent, "/var/lib/communiques": state}),
        "COMMUNIQUES_READ_KEY": READ_KEY,
        "COMMUNIQUES_RATE_EXPORT": f"{EXPORTS_PER_MINUTE}/60",
    }
    workers, options = serve_options()
    with ThreadPoolExecutor(3) as pool:
        # three start-ups at once on a busy machine: more time than one gets
        futures = [pool.submit(start_server, link, env, workers, options, 120)
                   for _ in range(3)]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        for f in futures:
            f.result()  # the first start-up that failed, if any
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def nginx(replicas: list[LiveServer]) -> Iterator[Nginx]:
    with Nginx([r.port for r in replicas]) as proxy:
        yield proxy


def test_publish_and_rollback_under_load_through_nginx(
    builds: tuple[Path, Path], link: Path, replicas: list[LiveServer], nginx: Nginx
) -> None:
    from indexer.document import parse_file
    from indexer.ingest import find_files

    a, b = builds
    requests = workload([parse_file(p) for p in find_files([SAMPLE_CORPUS])], 200)
    watch = LinkWatch(link).start()
    probes = Probes([r.url for r in replicas]).start()  # each replica, directly
    load = Load(nginx.url, requests, rate=40, clients=4, max_requests=2000).start()
    try:
        time.sleep(1.0)
        publish(b, link)
        time.sleep(2.5)
        publish(a, link)  # the rollback: the previous build, published again
        time.sleep(2.5)
    finally:
        load.stop()
        probes.stop()
        watch.stop()

    assert len(load.answers) >= 100, len(load.answers)
    assert not load.errors(), [e.error for e in load.errors()[:5]]
    assert not probes.errors(), [e.error for e in probes.errors()[:5]]
    found = switches(watch, {str(a.resolve()): 0, str(b.resolve()): 1}, probes, load)
    assert [s.want for s in found] == [1, 0], "B, then A again"
    for s in found:
        for url, seconds in s.replicas.items():
            assert seconds is not None, f"{url} never answered from {s.build}"
            assert seconds <= 1.0, f"{url} answered from {s.build} after {seconds:.2f} s"
        assert s.late_through_nginx == 0, f"old answers through nginx after {s.build}"
        settled = [x for x in load.answers
                   if x.marker is not None and s.at + 1.0 <= x.t_sent and x.t_done < s.until]
        assert settled, "no search for the marker went through nginx after the switch"
    # nginx spread the load over every replica
    used = {e.upstreams[-1] for e in nginx.access_log() if e.upstreams}
    assert used == {f"127.0.0.1:{r.port}" for r in replicas}, used


def test_a_session_signed_in_through_nginx_is_valid_on_every_replica(
    replicas: list[LiveServer], nginx: Nginx
) -> None:
    """The form is posted through nginx (its Origin checked against the Host nginx passes on)
    and the cookie, signed with a secret derived from the env file's keys, opens the drafts on
    every replica; writes are refused by all of them (they read a published build)."""
    r = httpx.post(nginx.url + "/connexion", data={"key": READ_KEY, "next": "/"},
                   headers={"Origin": nginx.url})
    assert r.status_code == 303, r.text
    session = {"Cookie": f"{SESSION_COOKIE}={r.cookies[SESSION_COOKIE]}"}
    anonymous = httpx.get(replicas[0].url + "/health").json()["documents"]
    for replica in replicas:
        counted = httpx.get(replica.url + "/health", headers=session).json()["documents"]
        assert counted > anonymous, (replica.url, counted, anonymous)
    foreign = httpx.post(nginx.url + "/connexion", data={"key": READ_KEY},
                         headers={"Origin": "https://ailleurs.example"})
    assert foreign.status_code == 403
    # The replicas only read: no writers' key in the env file, so no write is taken.
    for headers in ({}, {"Authorization": f"Bearer {READ_KEY}"}):
        put = httpx.put(nginx.url + "/api/documents/ecrit-sur-un-replica", content=EXTRA_DOC,
                        headers={"Content-Type": "text/markdown", **headers})
        assert put.status_code == 403, put.text


def test_rate_limits_count_the_real_client_on_all_replicas(
    replicas: list[LiveServer], nginx: Nginx
) -> None:
    """nginx replaces whatever X-Forwarded-For a client sends by the connection's address, and
    the replicas count in the one storage the env file names: a client gets its exports per
    minute, whichever replica answers and whatever address it claims."""
    before = len(nginx.access_log())
    statuses = []
    for i in range(EXPORTS_PER_MINUTE + 2):
        r = httpx.get(nginx.url + "/api/export", params={"q": "cloud", "format": "jsonl"},
                      headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=30)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) > 0
    assert statuses == [200] * EXPORTS_PER_MINUTE + [429, 429], statuses
    answered_by = {e.upstreams[-1] for e in nginx.access_log()[before:]}
    assert len(answered_by) >= 2, answered_by


def test_a_stopped_replica_is_passed_over(replicas: list[LiveServer], nginx: Nginx) -> None:
    """Last of this module: one replica stops (SIGTERM, as systemd stops it); nginx sends the
    requests it would have had to the others, without an error."""
    replicas[-1].stop()
    before = len(nginx.access_log())
    with httpx.Client(base_url=nginx.url, timeout=30) as client:
        statuses = [client.get("/api/search", params={"q": "numérique"}).status_code
                    for _ in range(30)]
    assert statuses == [200] * 30, statuses
    stopped = f"127.0.0.1:{replicas[-1].port}"
    log = nginx.access_log()[before:]
    assert all(e.upstreams[-1] != stopped for e in log)
    assert any(stopped in e.upstreams for e in log), "the stopped replica was tried first"
