"""Replicas behind nginx while new index builds are published, and rolled back.

    python -m bench.replicas [--replicas 3] [--seconds 60] [--rate 100] [--clients 8]
                             [--publish-every 10] [--docs 0] [--restart]

Builds two index builds, A (the sample corpus, or ``--docs N`` synthetic documents) and B (A
plus one document holding a word no other has), publishes A with ``communiques publish``,
starts N replicas of ``communiques serve`` with the options and variables of
``deploy/communiques@.service`` and ``deploy/communiques.env``, and nginx in front of them
with ``deploy/nginx/communiques.conf`` (only its ports replaced). Steady search load then goes
through nginx while B and A are published in turn; every replica is also asked directly,
every 20 ms, whether it answers from the new build yet. ``--restart`` stops one replica
halfway (SIGTERM) and starts it again under the load. Prints the requests, errors and
latencies through nginx and, per publication, the time each replica took to answer from the
new build.

The pieces (nginx run as a child process with a temporary prefix, the rendering of the
shipped file, the load, the probes, the switch times) are also what
``tests/test_replicas_nginx.py`` runs, in a short version.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.net import free_port
from bench.table import percentile, print_table

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SITE_CONF = DEPLOY / "nginx" / "communiques.conf"
UNIT = DEPLOY / "communiques@.service"
ENV_FILE = DEPLOY / "communiques.env"

MARKER = "ornithorynque"
"""A word only build B holds: a search for it finds 1 document in B, none in A."""

EXTRA_DOC = f"""---
title: Un communiqué que seule la nouvelle version de l'index contient
date: 2025-05-05 10:00:00 +02:00
tags:
- Cloud
---

Le mot {MARKER} n'existe que dans cette version de l'index.
"""

SERVE_OWN = ("--index", "--host", "--port", "--workers")
"""ExecStart options that each replica sets for itself (the others are taken as they are)."""


# --- the shipped files ----------------------------------------------------------------------


def nginx_binary() -> str | None:
    """Debian's nginx (``scripts/install-nginx.sh``), or None."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


_LISTEN = re.compile(r"^(\s*)listen\s+80;", re.M)
_SERVER = re.compile(r"^(\s*)server\s+127\.0\.0\.1:\d+((?:\s+[^;\s]+)*);\n", re.M)


def render_site(listen: int, replicas: Sequence[int], text: str | None = None) -> str:
    """``deploy/nginx/communiques.conf`` for this run: nginx listens on 127.0.0.1:``listen``
    and its upstream lists ``replicas`` (one ``server`` line each, with the parameters of the
    shipped lines, which must all be the same). Nothing else is changed."""
    text = SITE_CONF.read_text(encoding="utf-8") if text is None else text
    servers = list(_SERVER.finditer(text))
    if not servers or len({m.group(2) for m in servers}) != 1:
        raise ValueError(f"{SITE_CONF}: expected upstream `server 127.0.0.1:PORT ...;` lines "
                         "that all have the same parameters")
    if len(_LISTEN.findall(text)) != 1:
        raise ValueError(f"{SITE_CONF}: expected one `listen 80;`")
    indent, params = servers[0].group(1), servers[0].group(2)
    lines = "".join(f"{indent}server 127.0.0.1:{port}{params};\n" for port in replicas)
    text = text[: servers[0].start()] + lines + text[servers[-1].end():]
    if _SERVER.findall(text[: servers[0].start()] + text[servers[0].start() + len(lines):]):
        raise ValueError(f"{SITE_CONF}: the upstream's `server` lines must be consecutive")
    return _LISTEN.sub(lambda m: f"{m.group(1)}listen 127.0.0.1:{listen};", text)


def read_unit(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section → key → values (a key may be repeated; lines ending in a
    backslash continue)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"{path}: not a unit file line: {line!r}")
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exec_start(port: int, unit: Path = UNIT) -> list[str]:
    """The unit's ExecStart as an argument list, for the instance ``port`` (``%i``)."""
    (command,) = read_unit(unit)["Service"]["ExecStart"]
    return [arg.replace("%i", str(port)) for arg in shlex.split(command)]


def serve_options(unit: Path = UNIT) -> tuple[int, tuple[str, ...]]:
    """The unit's ``--workers`` and its other ``serve`` options, less those each replica sets
    for itself (index, host, port)."""
    from service.cli import build_parser

    argv = exec_start(8001, unit)
    args = build_parser().parse_args(argv[1:])
    rest: list[str] = []
    it = iter(argv[2:])
    for arg in it:
        name = arg.split("=", 1)[0]
        if name in SERVE_OWN:
            if "=" not in arg:
                next(it)
            continue
        rest.append(arg)
    return args.workers, tuple(rest)


def unit_env(moved: dict[str, Path], path: Path = ENV_FILE) -> dict[str, str]:
    """The variables of ``deploy/communiques.env``, each path prefix in ``moved`` replaced
    (``/srv/communiques`` → a temporary folder...)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        for prefix, there in moved.items():
            value = value.replace(prefix, str(there))
        env[key.strip()] = value.strip()
    return env


# --- nginx ----------------------------------------------------------------------------------

MAIN_CONF = """\
# The main file of a throw-away nginx (Debian's /etc/nginx/nginx.conf needs root's paths):
# everything under its prefix, and the shipped site file included as it is rendered.
worker_processes 1;
events {{
    worker_connections 1024;
}}
http {{
    log_format upstreams '$msec $status "$upstream_addr" "$upstream_status" $request_time "$request"';
    access_log {prefix}/access.log upstreams;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/communiques.conf;
}}
"""


@dataclass
class Upstreamed:
    """One line of the throw-away nginx's access log."""

    status: int
    upstreams: list[str]
    """Every replica tried, in order (more than one: nginx passed the request on)."""
    request: str


class Nginx:
    """nginx as a child process (``daemon off``) in front of ``replicas``, with the shipped
    site file, under a temporary prefix: no root-owned path is written."""

    def __init__(self, replicas: Sequence[int], binary: str | None = None) -> None:
        self.binary = binary or nginx_binary()
        if self.binary is None:
            raise RuntimeError("nginx is not installed (scripts/install-nginx.sh)")
        # Started by root, nginx's workers run as nobody: they must reach the temp folders
        # (which nginx makes and gives them), so the prefix is a folder of its own in /tmp
        # that others may traverse, not one inside a private temporary folder.
        prefix = Path(tempfile.mkdtemp(prefix="communiques-nginx-"))
        prefix.chmod(0o755)
        (prefix / "temp").mkdir()
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (prefix / "communiques.conf").write_text(render_site(self.port, replicas))
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(MAIN_CONF.format(prefix=prefix))
        self.proc: subprocess.Popen[bytes] | None = None

    def _argv(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf),  # type: ignore[list-item]
                "-e", str(self.prefix / "error.log"), *extra]

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` of the rendered configuration."""
        return subprocess.run(self._argv("-t", "-g", f"pid {self.prefix}/nginx.pid;"),
                              capture_output=True, text=True, timeout=30)

    def start(self, timeout: float = 15) -> Nginx:
        self.proc = subprocess.Popen(
            self._argv("-g", f"daemon off; pid {self.prefix}/nginx.pid;"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {err}"
                                   f"{self.error_log()}")
            try:
                with socket_to(self.port):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: requests in flight finish
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        """Remove the prefix (logs included), once stopped."""
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[Upstreamed]:
        out = []
        path = self.prefix / "access.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
            m = re.match(r'\S+ (\d+) "([^"]*)" "[^"]*" \S+ "(.*)"$', line)
            if m:
                tried = [u.strip() for u in re.split(r"[,:]\s", m.group(2)) if u.strip()]
                out.append(Upstreamed(int(m.group(1)), tried, m.group(3)))
        return out

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


@contextmanager
def socket_to(port: int) -> Iterator[None]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1):
        yield


# --- load and probes ------------------------------------------------------------------------


@dataclass
class Answer:
    t_sent: float
    t_done: float
    status: int
    """0: no HTTP answer (connection refused, timeout...)."""
    marker: int | None = None
    """For a search for :data:`MARKER`: how many documents it found (1: build B)."""
    error: str = ""

    @property
    def ms(self) -> float:
        return (self.t_done - self.t_sent) * 1000


def _get(client: httpx.Client, path: str, params: dict[str, object],
         marker: bool = False) -> Answer:
    t = time.monotonic()
    try:
        r = client.get(path, params=params)
    except httpx.HTTPError as exc:
        return Answer(t, time.monotonic(), 0, error=repr(exc))
    done = time.monotonic()
    total = None
    if marker and r.status_code == 200:
        total = r.json()["total"]
    return Answer(t, done, r.status_code, total,
                  "" if r.status_code == 200 else f"{path} {params}: {r.status_code} {r.text[:200]}")


class Load:
    """``clients`` threads sending ``rate`` requests/s in all to ``base`` (nginx), paced:
    search-box queries of ``requests`` (a :func:`bench.bench_search.workload`), a quarter of
    them as completions, and one in ten a search for :data:`MARKER` (which build answered)."""

    def __init__(self, base: str, requests: list[dict], rate: float = 60, clients: int = 4,
                 max_requests: int = 100_000) -> None:
        self.base, self.requests = base, requests
        self.interval = clients / rate
        self.max_requests = max_requests
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(clients)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        next_t = time.monotonic() + rng.random() * self.interval
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set() and len(self.answers) < self.max_requests:
                wait = next_t - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                next_t = max(next_t + self.interval, time.monotonic() - 1)
                pick = rng.random()
                if pick < 0.1:
                    answer = _get(client, "/api/search", {"q": MARKER}, marker=True)
                else:
                    req = rng.choice(self.requests)
                    if pick < 0.3:
                        answer = _get(client, "/api/autocomplete", {"q": req["q"].strip()[:6]})
                    else:
                        params = {"q": req["q"], "tag": req.get("tags", [])}
                        if req.get("year"):
                            params["year"] = req["year"]
                        answer = _get(client, "/api/search", params)
                self.answers.append(answer)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def errors(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]


class Probes:
    """One thread per replica asking it directly, every ``every`` seconds, for :data:`MARKER`:
    which build it answers from."""

    def __init__(self, urls: Sequence[str], every: float = 0.02) -> None:
        self.urls, self.every = list(urls), every
        self.answers: dict[str, list[Answer]] = {u: [] for u in self.urls}
        self.paused: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(u,), daemon=True)
                         for u in self.urls]

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not self._stop.wait(self.every):
                if url not in self.paused:
                    self.answers[url].append(_get(client, "/api/search", {"q": MARKER},
                                                  marker=True))

    def start(self) -> Probes:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def errors(self) -> list[Answer]:
        return [a for answers in self.answers.values() for a in answers if a.status != 200]


class LinkWatch:
    """When the published link changed target: the moment a publication took effect, to time
    the replicas against. The link is polled every millisecond, but the time kept is the new
    link's own (its mtime: ``publish`` makes it, then renames it over the old one), which a
    busy machine does not delay as it delays this thread."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.swaps: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = os.path.realpath(self.link)
        while not self._stop.wait(0.001):
            now = os.path.realpath(self.link)
            if now != last:
                made = os.lstat(self.link).st_mtime_ns / 1e9
                self.swaps.append((made - (time.time() - time.monotonic()), now))
                last = now

    def start(self) -> LinkWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def publish(build: Path, link: Path) -> float:
    """``communiques publish BUILD --index LINK``, as an operator runs it; returns when it
    exited (monotonic)."""
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "publish", str(build), "--index", str(link)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"communiques publish: {proc.stderr}")
    return time.monotonic()


def switch_time(answers: Sequence[Answer], since: float, until: float, want: int) -> float | None:
    """Seconds from ``since`` (a publication) to the replica's first answer from the new build
    (``want``: the :data:`MARKER` count of that build) after which every request it was sent
    was answered from that build too, up to ``until`` (the next publication: a request still
    in flight then may be answered from the next build); None if it never settled on it."""
    window = sorted((a for a in answers
                     if since <= a.t_sent and a.t_done < until and a.status == 200),
                    key=lambda a: a.t_sent)
    settled = None
    for a in window:
        if a.marker != want:
            settled = None
        elif settled is None:
            settled = a
    return None if settled is None else settled.t_done - since


def describe(answers: Sequence[Answer], since: float, until: float) -> str:
    """The answers sent between two publications, as runs: ``[+0.02 s] 12 × 0, ...``."""
    runs: list[list] = []
    for a in sorted(answers, key=lambda a: a.t_sent):
        if since <= a.t_sent and a.t_done < until:
            value = a.marker if a.status == 200 else f"HTTP {a.status}"
            if runs and runs[-1][1] == value:
                runs[-1][2] += 1
                runs[-1][3] = max(runs[-1][3], a.ms)
            else:
                runs.append([a.t_sent - since, value, 1, a.ms])
    return ", ".join(f"[+{t:.2f} s] {n} × {v} (slowest {ms:.0f} ms)" for t, v, n, ms in runs) or "none"


@dataclass
class Switch:
    """One publication and what each replica did."""

    build: str
    want: int
    at: float
    """When the link changed (monotonic)."""
    until: float = float("inf")
    replicas: dict[str, float | None] = field(default_factory=dict)
    """Seconds to answer from the new build, per replica URL (None: never did)."""
    late_through_nginx: int = 0
    """Searches for the marker sent through nginx more than a second after the publication
    and answered from the old build."""


def switches(watch: LinkWatch, builds: dict[str, int], probes: Probes, load: Load,
             skip: dict[str, list[tuple[float, float]]] | None = None) -> list[Switch]:
    """What each publication seen by ``watch`` did on each replica (``builds``: target folder
    → its marker count); ``skip``: per replica, the periods it was stopped on purpose."""
    out = []
    for i, (at, target) in enumerate(watch.swaps):
        until = watch.swaps[i + 1][0] if i + 1 < len(watch.swaps) else float("inf")
        want = builds[target]
        s = Switch(Path(target).name, want, at, until)
        for url, answers in probes.answers.items():
            if any(a <= until and b >= at for a, b in (skip or {}).get(url, ())):
                continue
            s.replicas[url] = switch_time(answers, at, until, want)
        s.late_through_nginx = sum(
            1 for a in load.answers
            if a.marker is not None and at + 1.0 <= a.t_sent and a.t_done < until
            and a.marker != want)
        out.append(s)
    return out


# --- builds and replicas (the benchmark's own; the test uses tests/conftest.py's) ---------


def make_builds(folder: Path, docs: int = 0) -> tuple[Path, Path, list]:
    """Build A (the sample corpus, or ``docs`` synthetic documents) and build B (A and one
    more document, holding :data:`MARKER`); returns both and the documents (for the load)."""
    from indexer.document import parse_file
    from indexer.ingest import find_files, ingest
    from indexer.schema import open_index

    a, b, extra = folder / "build-a", folder / "build-b", folder / "extra" / "communiques"
    corpus = folder / "corpus" if docs else ROOT / "corpus"
    if (folder / "built").exists():  # --builds DIR of an earlier run, of the same --docs
        return a, b, [parse_file(p) for p in find_files([corpus])]
    extra.mkdir(parents=True)
    (extra / "ajout.md").write_text(EXTRA_DOC, encoding="utf-8")
    if docs:
        from bench.synth import build_light_index, generate, light_analysis

        generate(corpus, docs, seed=7)
        build_light_index(corpus, a, optimize=True)
        shutil.copytree(a, b)
        with light_analysis():
            report = ingest(open_index(b), [extra.parent], progress=False)
    else:
        report = ingest(open_index(a, create=True), [corpus], progress=False)
        if report.rejected:
            raise RuntimeError(f"build A: {report.rejected}")
        shutil.copytree(a, b)
        report = ingest(open_index(b), [extra.parent], progress=False)
    if report.rejected or len(report.added) != 1:
        raise RuntimeError(f"build B: {report.rejected or report.added}")
    (folder / "built").write_text(f"{docs}\n")
    return a, b, [parse_file(p) for p in find_files([corpus])]


class Replica:
    """``communiques serve`` as the unit starts it, on ``port``, with the env file's variables."""

    def __init__(self, link: Path, port: int, env: dict[str, str]) -> None:
        self.port, self.link, self.env = port, link, env
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Replica:
        workers, options = serve_options()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--index", str(self.link),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
             *options],
            cwd=ROOT, env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return self

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from its start until ``/health`` answered 200 (finished loading)."""
        while time.monotonic() - self.started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.port} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"replica {self.port} not ready within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> None:  # noqa: C901, PLR0912, PLR0915 - one scenario, in order
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60, help="of load (default 60)")
    parser.add_argument("--rate", type=float, default=100, help="requests/s through nginx")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--publish-every", type=float, default=10,
                        help="seconds between publications (B, A, B...; default 10)")
    parser.add_argument("--docs", type=int, default=0,
                        help="synthetic documents per build (default 0: the sample corpus)")
    parser.add_argument("--restart", action="store_true",
                        help="stop one replica halfway (SIGTERM) and start it again")
    parser.add_argument("--builds", type=Path, default=None, metavar="DIR",
                        help="make the builds there, or use those an earlier run made there "
                             "(default: a temporary folder)")
    args = parser.parse_args()

    from bench.bench_search import workload

    with tempfile.TemporaryDirectory(prefix="communiques-replicas-") as tmp:
        tmp_path = Path(tmp)
        load_before = os.getloadavg()[0]
        t = time.monotonic()
        if args.builds is not None:
            args.builds.mkdir(parents=True, exist_ok=True)
        reused = args.builds is not None and (args.builds / "built").exists()
        a, b, docs = make_builds(args.builds or tmp_path, args.docs)
        built = "reused" if reused else f"made in {time.monotonic() - t:.0f} s"
        srv, state = tmp_path / "srv", tmp_path / "state"
        srv.mkdir()
        state.mkdir()
        link = srv / "current"
        publish(a, link)
        env = unit_env({"/srv/communiques": srv, "/var/lib/communiques": state})
        replicas = [Replica(link, free_port(), env) for _ in range(args.replicas)]
        nginx = None
        try:
            for r in replicas:
                r.start()
            started = [r.wait_ready() for r in replicas]
            nginx = Nginx([r.port for r in replicas]).start()
            watch = LinkWatch(link).start()
            probes = Probes([r.url for r in replicas]).start()
            load = Load(nginx.url, workload(docs, 500), rate=args.rate,
                        clients=args.clients).start()
            t0 = time.monotonic()
            restarted: dict[str, list[tuple[float, float]]] = {}
            downtime: list[float] = []

            def restart(replica: Replica, at: float) -> None:
                """SIGTERM, as systemd stops a unit, then a new start under the load."""
                time.sleep(max(0.0, at - time.monotonic()))
                probes.paused.add(replica.url)
                down = time.monotonic()
                replica.stop()
                replica.start()
                replica.wait_ready()
                downtime.append(time.monotonic() - down)
                restarted[replica.url] = [(down, time.monotonic() + 0.5)]
                time.sleep(0.5)
                probes.paused.discard(replica.url)

            restarter = None
            if args.restart:  # halfway, between two publications
                restarter = threading.Thread(target=restart, daemon=True, args=(
                    replicas[0], t0 + args.seconds / 2 + args.publish_every / 4))
                restarter.start()
            builds = [b, a]
            next_publish, k = t0 + args.publish_every, 0
            while time.monotonic() < t0 + args.seconds:
                if next_publish <= time.monotonic() < t0 + args.seconds - 2:
                    publish(builds[k % 2], link)
                    k += 1
                    next_publish += args.publish_every
                time.sleep(0.05)
            if restarter is not None:
                restarter.join()
            load.stop()
            probes.stop()
            watch.stop()
        finally:
            for r in replicas:
                r.stop()
            if nginx is not None:
                nginx.stop()
        log = nginx.access_log() if nginx is not None else []
        if nginx is not None:
            nginx.remove()

        lat = [x.ms for x in load.answers if x.status == 200]
        seconds = max(x.t_done for x in load.answers) - min(x.t_sent for x in load.answers)
        errors = load.errors()
        passed_on = sum(1 for e in log if len(e.upstreams) > 1)
        per_replica = {f"127.0.0.1:{r.port}": 0 for r in replicas}
        for e in log:
            if e.upstreams and e.upstreams[-1] in per_replica:
                per_replica[e.upstreams[-1]] += 1
        corpus = f"{args.docs:,} synthetic documents" if args.docs else "the sample corpus"
        print(f"{args.replicas} replicas (serve --workers 1 each) behind nginx, {corpus} "
              f"(builds {built}), {args.clients} clients at {args.rate:.0f} requests/s "
              f"for {seconds:.0f} s, a publication every {args.publish_every:.0f} s"
              + (", one replica restarted halfway" if args.restart else ""))
        print(f"replicas ready (/health 200) {', '.join(f'{s:.1f}' for s in started)} s after "
              f"their start" + (f"; the restarted one out for {downtime[0]:.1f} s (stop, start, "
                                f"/health 200)" if downtime else "")
              + f"; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        print()
        print_table(
            ["requests", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms",
             "passed on by nginx", "answered per replica"],
            [[len(load.answers), len(errors), f"{percentile(lat, 50):.1f}",
              f"{percentile(lat, 95):.1f}", f"{percentile(lat, 99):.1f}", f"{max(lat):.0f}",
              passed_on, " / ".join(str(n) for n in per_replica.values())]],
        )
        for e in errors[:5]:
            print("error:", e.error)
        print()
        found = switches(watch, {str(a.resolve()): 0, str(b.resolve()): 1}, probes, load,
                         restarted)
        rows = []
        for i, s in enumerate(found, 1):
            times = [s.replicas.get(r.url, "restarting") for r in replicas]
            cells = ["never" if x is None else x if isinstance(x, str) else f"{x * 1000:.0f}"
                     for x in times]
            rows.append([i, f"build {s.build[-1].upper()}" + (" (rollback)" if s.want == 0 else ""),
                         *cells, s.late_through_nginx])
        print_table(["publication", "to", *(f"replica {i + 1} ms" for i in range(len(replicas))),
                     "old answers via nginx > 1 s after"], rows)
        for i, s in enumerate(found, 1):
            for n, r in enumerate(replicas, 1):
                if r.url in s.replicas and s.replicas[r.url] is None:
                    print(f"publication {i}, replica {n}: never settled; what it answered: "
                          + describe(probes.answers[r.url], s.at, s.until))
        worst = [x for s in found for x in s.replicas.values()]
        print(f"slowest switch: {max((x for x in worst if x is not None), default=0) * 1000:.0f} ms;"
              f" replicas that never switched: {sum(1 for x in worst if x is None)};"
              f" probe errors: {len(probes.errors())}")
    if errors or None in worst:
        sys.exit(1)


if __name__ == "__main__":
    main()
