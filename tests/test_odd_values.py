"""Odd front-matter values: one bad value rejects its own file, naming the field, and never
stops an ingest nor makes the service answer 5xx.

Dates at the edges of what a datetime holds (``9999-12-31T23:59:59-12:00`` is in year 10000
in UTC), huge numbers, nested lists, empty strings, wrong types and YAML escapes no UTF-8 file
holds, in every field of the site's real format, through ``ingest`` (in this process, on
files) and through ``PUT`` (over HTTP, a live ``serve --workers 2`` with a key), with readers
at the same time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.document import DocumentError, parse_text
from indexer.ingest import ingest
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from tests.conftest import GOOD, ROOT, start_server

KEY = "odd-values-key"
EDGE_DATES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]

FIELDS = [
    "title", "date", "tags", "categories", "chapeau-text", "communique_file", "files",
    "published", "permalink", "event_start_date", "event_end_date", "lieu", "adresse",
    "champs_informations", "une-ou-diaporama", "contact-presse", "categorie",
    "afficher_la_carte", "auteur", "redirection",
]
"""Every field the real site's files use."""

RAW = [
    *EDGE_DATES, *(f'"{d}"' for d in EDGE_DATES), "9999-12-31", "0001-01-01",
    "9999-12-31 23:59:59 -12:00", "0001-01-01 00:00:00 +14:00", "2021-03-04 10:00:00 +25:00",
    "2023-13-45", '"\\ud800"', '"a\\udfffb"', '"\\0"', '"\\x01\\x1f"', "9" * 5000,
    "-" + "9" * 4400, "1e400", ".nan", "-.inf", "~", '""', "''", "[]", "{}", "[[[[]]]]",
    "[[1, [2, [3]]], {a: [b]}]", "!!binary aGVsbG8=", "0b1010", "190:20:30", "yes", "Non",
    "[true, false]", "[~, '', 0]", "{file: ~}", "[{file: [1]}, {file: '/uploads/\\0.pdf'}]",
    "[{file: '/uploads/x.pdf', nom: {a: 1}}]", '"/uploads/' + "x" * 2000 + '.pdf"',
    "/:categories/:title/", '"/chemin avec espaces/"', "https://exemple.fr/a/",
]
"""YAML as written, for what a dumper would not write: escapes, edge timestamps, huge
integers, tags."""

timezones = st.builds(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-1439, 1439)
)
scalars = st.one_of(
    st.none(), st.booleans(), st.just(""), st.text(max_size=30),
    st.integers(), st.sampled_from([10**100, -(10**4000), 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.builds(lambda d, tz: d.replace(tzinfo=tz), st.datetimes(), timezones),
    st.sampled_from([dt.datetime.min, dt.datetime.max, dt.date.min, dt.date.max]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["file", "nom", "name", "image", "a"]), inner, max_size=3),
    max_leaves=8,
)
field_value = st.one_of(
    st.tuples(st.just("value"), values),
    st.tuples(st.just("raw"), st.sampled_from(RAW)),
)
GOOD_TITLE = st.sampled_from(["Un titre ordinaire", "Cloud souverain de l’État"])


@st.composite
def front_matters(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A markdown file with odd values in some fields; returns it and the fields set."""
    chosen = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6, unique=True))
    lines: list[str] = []
    if "title" not in chosen and draw(st.integers(0, 9)):  # mostly: the other fields matter
        lines.append(f"title: {draw(GOOD_TITLE)}")
    for name in chosen:
        kind, value = draw(field_value)
        if kind == "raw":
            lines.append(f"{name}: {value}")
        else:
            lines.append(yaml.safe_dump({name: value}, allow_unicode=True).rstrip("\n"))
    body = draw(st.sampled_from(["Le cloud de l’État.", "", "Texte\u00a0: 12 %.", "{: .x}"]))
    return "---\n" + "\n".join(lines) + "\n---\n\n" + body + "\n", chosen


def names_a_field(reason: str, fields: list[str]) -> bool:
    """A rejection says which field (or that the front matter as a whole) is at fault."""
    named = [f for f in [*fields, "title"] if f"field '{f}'" in reason]
    return bool(named) or "front matter" in reason or "no title and no text" in reason


HYPOTHESIS = {"deadline": None, "database": None,
              "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture]}


# --- the values seen -------------------------------------------------------------------------


@pytest.mark.parametrize("value", EDGE_DATES)
def test_edge_date_is_refused_naming_the_field(value: str) -> None:
    text = f"---\ntitle: Daté au bout du calendrier\ndate: {value}\n---\n\nTexte.\n"
    with pytest.raises(DocumentError, match="field 'date'.*out of range"):
        parse_text(text, "bord", "communiques")
    quoted = text.replace(value, f'"{value}"')
    with pytest.raises(DocumentError, match="field 'date'.*out of range"):
        parse_text(quoted, "bord", "communiques")


def test_edge_dates_within_utc_are_kept() -> None:
    early = parse_text("---\ntitle: T\ndate: 0001-01-01T00:00:00-01:00\n---\n", "a", "c")
    late = parse_text("---\ntitle: T\ndate: 9999-12-31T23:59:59+12:00\n---\n", "b", "c")
    assert early.utc_naive == dt.datetime(1, 1, 1, 1)
    assert late.utc_naive == dt.datetime(9999, 12, 31, 11, 59, 59)


def test_cli_ingest_rejects_only_the_bad_files(tmp_path: Path) -> None:
    """As seen: one such date ended the whole ingest with an OverflowError traceback."""
    folder = tmp_path / "corpus" / "communiques"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"bon-{i}.md").write_text(
            GOOD.format(title=f"Communiqué {i}", body="Le cloud."), encoding="utf-8")
    for i, value in enumerate(EDGE_DATES):
        (folder / f"bord-{i}.md").write_text(
            f"---\ntitle: Bord {i}\ndate: {value}\n---\n\nTexte.\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "ingest", str(tmp_path / "corpus"),
         "--index", str(tmp_path / "index"), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["added"] == 3
    assert sorted(Path(r["path"]).name for r in report["rejected"]) == ["bord-0.md", "bord-1.md"]
    assert all("field 'date'" in r["reason"] for r in report["rejected"])


# --- property: ingest, in this process, on files ----------------------------------------------


@pytest.fixture(scope="module")
def odd_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("odd-index")


_counter = itertools.count()


@settings(max_examples=40, **HYPOTHESIS)
@given(files=st.lists(front_matters(), min_size=1, max_size=3))
def test_ingest_never_fails_on_odd_values(odd_index: Path,
                                          files: list[tuple[str, list[str]]]) -> None:
    n = next(_counter)
    # Hypothesis seeds the global random module the same way for every example, and Whoosh
    # names new segments with it: the same name twice would overwrite a committed segment.
    random.seed(os.urandom(16))
    ix = open_index(odd_index, create=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "communiques"
        folder.mkdir()
        fields_of: dict[str, list[str]] = {}
        for i, (text, fields) in enumerate(files):
            (folder / f"odd-{n}-{i}.md").write_text(text, encoding="utf-8")
            fields_of[f"odd-{n}-{i}"] = fields
        (folder / f"good-{n}.md").write_text(
            GOOD.format(title=f"Bon {n}", body="Le cloud."), encoding="utf-8")
        report = ingest(ix, [folder], progress=False)
    assert f"good-{n}" in report.added, report.rejected
    rejected = {Path(p).stem: reason for p, reason in report.rejected}
    assert set(rejected) | set(report.added) == {*fields_of, f"good-{n}"}
    for doc_id, reason in rejected.items():
        assert names_a_field(reason, fields_of[doc_id]), (reason, files)


def test_odd_documents_that_were_accepted_are_served(odd_index: Path) -> None:
    """Whatever the property test let in can be searched, sorted, counted and exported."""
    if next(_counter) == 0:
        pytest.skip("follows the ingest property test")
    si = SearchIndex(open_index(odd_index), preload=False)
    assert si.stats()["documents"] > 0
    for sort in ("relevance", "date", "-date"):
        result = si.search(SearchRequest(q="", sort=sort, size=100))
        assert result.total == si.stats()["documents"]
        for hit in result.hits:
            assert si.document(hit.id) is not None
    assert si.search(SearchRequest(q="cloud")).total > 0
    assert len(list(si.export(SearchRequest(q="")))) == si.stats()["documents"]


# --- property: PUT, over HTTP, with readers meanwhile -----------------------------------------


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.conftest import SAMPLE_CORPUS, build_index

    index = build_index(tmp_path_factory.mktemp("odd-put-index"), SAMPLE_CORPUS)
    var = tmp_path_factory.mktemp("odd-put-var")
    env = {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_DOCUMENTS": str(var / "documents"),
           "COMMUNIQUES_RATE_WRITE": "off", "COMMUNIQUES_RATE_EXPORT": "off"}
    server = start_server(index, env, workers=2)
    try:
        yield server.url
    finally:
        server.stop()


class Readers:
    """Threads reading while the writes go on; they collect every 5xx they see."""

    PATHS = ["/api/search?q=cloud", "/api/search?q=&sort=date", "/api/search?q=&sort=-date",
             "/api/stats", "/?q=titre", "/archives?q=cloud&sort=date", "/health",
             "/api/export?q=titre&format=csv"]

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.errors: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for path in itertools.cycle(self.PATHS[i:] + self.PATHS[:i]):
                if self._stop.is_set():
                    return
                r = client.get(path)
                self.count += 1
                if r.status_code >= 500:
                    self.errors.append(f"{path}: {r.status_code} {r.text[:200]}")

    def __enter__(self) -> Readers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


_accepted: list[str] = []


@settings(max_examples=25, **HYPOTHESIS)
@given(doc=front_matters())
def test_put_never_answers_5xx_on_odd_values(writable: str, doc: tuple[str, list[str]]) -> None:
    text, fields = doc
    doc_id = f"odd-put-{next(_counter)}"
    r = httpx.put(f"{writable}/api/documents/{doc_id}", content=text.encode("utf-8"),
                  headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/markdown"},
                  timeout=60)
    assert r.status_code in (200, 422), (r.status_code, r.text, text)
    if r.status_code == 422:
        assert names_a_field(r.json()["detail"], fields), (r.json(), text)
    else:
        _accepted.append(doc_id)


def _put_edge_dates(url: str) -> None:
    for i, value in enumerate(EDGE_DATES * 3):
        r = httpx.put(
            f"{url}/api/documents/bord-{i}",
            content=f"---\ntitle: Bord\ndate: {value}\n---\n\nTexte.\n".encode(),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/markdown"},
            timeout=60)
        assert r.status_code == 422, r.text
        assert "field 'date'" in r.json()["detail"]
        ok = httpx.put(
            f"{url}/api/documents/pendant-{i}",
            content=GOOD.format(title=f"Pendant {i}", body="Texte.").encode(),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/markdown"},
            timeout=60)
        assert ok.status_code == 200, ok.text


def test_put_edge_date_answers_422_naming_the_field(writable: str) -> None:
    _put_edge_dates(writable)


def test_reads_meanwhile_never_answer_5xx(writable: str) -> None:
    with Readers(writable) as readers:
        _put_edge_dates(writable)
    assert readers.count > 0 and readers.errors == []


def test_odd_documents_written_by_put_are_served(writable: str) -> None:
    """The documents the PUT property let in: their pages, the API and exports answer."""
    if not _accepted:
        pytest.skip("follows the PUT property test")
    with Readers(writable) as readers, httpx.Client(base_url=writable, timeout=60) as client:
        for doc_id in _accepted[:40]:
            for path in (f"/api/documents/{doc_id}", f"/documents/{doc_id}",
                         f"/api/documents/{doc_id}/similar"):
                r = client.get(path)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
        for path in ("/api/search?q=&sort=date&size=100", "/api/export?q=&format=jsonl",
                     "/api/stats", "/?sort=-date", "/archives?q=titre"):
            assert client.get(path).status_code == 200, path
    assert readers.errors == []


def test_odd_attachment_paths_are_recorded_not_fatal(tmp_path: Path) -> None:
    """Attachment references that cannot be files: recorded on the document with a reason."""
    from indexer.attachments import AttachmentReader

    (tmp_path / "uploads").mkdir()
    text = ('---\ntitle: Pièces jointes étranges\ndate: 2021-01-01\nfiles:\n'
            '- file: "/uploads/\\0.pdf"\n- file: "/uploads/' + "x" * 2000 + '.pdf"\n'
            '- file: "/../../etc/passwd"\n- file: "/uploads/%2e%2e/%2e%2e/etc/hosts"\n'
            '- file: [1, 2]\n- file: "/uploads/"\n---\n\nTexte.\n')
    doc = parse_text(text, "etranges", "communiques")
    reader = AttachmentReader(tmp_path)
    reader(doc)
    reasons = [a.error for a in doc.attachments]
    assert len(reasons) == 5 and all(reasons), reasons
    assert reasons[0].startswith("invalid path") and reasons[1].startswith("invalid path")
    assert reasons[2] == reasons[3] == "path leaves the attachments folder"
    assert len(reader.problems) == 5 and reader.extracted == 0
