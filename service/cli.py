"""The ``communiques`` command: ingest, search, stats, serve, and the tag commands.

Every command is a thin layer over the same functions the HTTP service calls. Exit status:
0 success, 1 when some input was rejected (the rest was processed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from indexer.schema import IndexError_, default_index_dir, open_index


def _index_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--index", type=Path, default=None,
        help="index folder (default: $COMMUNIQUES_INDEX or var/index)",
    )


def _index_dir(args: argparse.Namespace) -> Path:
    return args.index if args.index is not None else default_index_dir()


def _query_args(p: argparse.ArgumentParser, required: bool) -> None:
    """The query and the filters of ``/api/search`` and ``/api/export``."""
    p.add_argument("query", nargs="+" if required else "*", help="the query (as in the box)")
    _index_arg(p)
    p.add_argument("--sort", default="relevance", choices=["relevance", "date", "-date"])
    p.add_argument("--tag", action="append", help="tag filter (repeatable: all of them)")
    p.add_argument("--collection")
    p.add_argument("--category")
    p.add_argument("--year", type=int)
    p.add_argument("--date-from", type=_date)
    p.add_argument("--date-to", type=_date)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--published", "--no-drafts", dest="published", action="store_const",
                       const=True, default=None,
                       help="published documents only (drafts are shown by default)")
    shown.add_argument("--drafts", dest="published", action="store_const", const=False,
                       help="drafts only")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None


def _aliases_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--aliases", type=Path, default=None, metavar="FILE",
        help="tag alias file (default: the one the index was keyed with, else the packaged one)",
    )


def _alias_file(args: argparse.Namespace) -> object:
    """The alias file for this command (see :func:`indexer.vocabulary.alias_file_for`)."""
    from indexer.vocabulary import alias_file_for

    return alias_file_for(_index_dir(args), getattr(args, "aliases", None))


def _site_attachments(paths: list[Path], cache: Path | None = None) -> object | None:
    """For a Jekyll site root given without ``--attachments-root``: a reader of its
    ``_uploads/`` or ``uploads/`` folder (the first site's, when several are given)."""
    from indexer.site import attachment_reader, find_site

    for path in paths:
        site = find_site(path)
        if site is not None and site.uploads is not None:
            return attachment_reader(site, cache)
    return None


def cmd_ingest(args: argparse.Namespace) -> int:
    from indexer.attachments import CACHE_FILE, AttachmentReader
    from indexer.ingest import IngestError, ingest
    from indexer.vocabulary import VocabularyError

    try:
        alias_file = _alias_file(args)
    except VocabularyError as exc:
        print(f"communiques ingest: --aliases: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.nice <= 19:
        print("communiques ingest: --nice: must be between 0 and 19", file=sys.stderr)
        return 2
    if args.nice:
        os.nice(args.nice)  # spaCy's worker processes (--jobs) inherit it
    ix = open_index(_index_dir(args), create=True, rebuild=True)
    cache = args.attachments_cache or _index_dir(args) / CACHE_FILE
    prepare = None
    if args.attachments_root:
        prepare = AttachmentReader(args.attachments_root, cache=cache)
    if prepare is None:
        prepare = _site_attachments(args.paths, cache)
    try:
        report = ingest(
            ix, args.paths, prune=args.prune, n_process=args.jobs,
            progress=None if not args.quiet else False, prepare=prepare,
            optimize=args.optimize, alias_file=alias_file, cluster=args.cluster,
        )
    except IngestError as exc:
        print(f"communiques ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        if prepare is not None:
            prepare.close()
    for path, reason in report.rejected:
        print(f"rejected: {path}: {reason}", file=sys.stderr)
    out = report.to_dict()
    if prepare is not None:
        for path, reason in prepare.problems:
            print(f"attachment: {path}: {reason}", file=sys.stderr)
        out["attachments"] = prepare.summary()
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(report.summary() + (
            ", attachments: {extracted} extracted, {from_cache} from the cache".format(
                **out["attachments"]) if prepare is not None else ""))
    return 1 if report.rejected else 0


def _search_index(args: argparse.Namespace) -> object:
    from indexer.search import SearchIndex

    return SearchIndex(open_index(_index_dir(args)), preload=False)


def _request(args: argparse.Namespace, paged: bool = True) -> object:
    """The same request object the API builds from its query parameters."""
    from indexer.search import SearchRequest

    return SearchRequest(
        q=" ".join(args.query), page=args.page if paged else 1,
        size=args.limit if paged else 10, sort=args.sort, tags=args.tag or [],
        collection=args.collection, category=args.category, year=args.year,
        date_from=args.date_from, date_to=args.date_to, published=args.published,
        drafts=True,  # the command line is the index owner's tool: drafts too
    )


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def cmd_search(args: argparse.Namespace) -> int:
    from indexer.query import QueryError
    from indexer.search import SearchError

    si = _search_index(args)
    try:
        result = si.search(_request(args))  # type: ignore[attr-defined]
    except (QueryError, SearchError) as exc:
        print(f"communiques search: {exc}", file=sys.stderr)
        return 2
    if args.json or args.full:
        from service.routes.search import SearchOut

        out = SearchOut.model_validate(result.to_dict()).model_dump()
        _print_json(out if args.full else out["hits"])
        return 0
    print(f"{result.total} résultat(s) en {result.took_ms} ms")
    for note in result.notes:
        print(f"note: {note}")
    if result.suggestion:
        print(f"Essayez avec : {result.suggestion}")
    start = (result.page - 1) * result.size
    for i, h in enumerate(result.hits, start + 1):
        tags = f"  [{', '.join(h.tags_canonical)}]" if h.tags_canonical else ""
        print(f"{i:>3}. [{(h.date or 'sans date')[:10]}] {h.title}  ({h.id}, {h.score:.2f}){tags}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every match, as the API's ``/api/export`` writes it, to a file or standard output."""
    from indexer.export import check_fields, stream
    from indexer.query import QueryError
    from indexer.search import SearchError

    si = _search_index(args)
    try:
        fields = check_fields(args.fields)
        records = si.export(_request(args, paged=False))  # type: ignore[attr-defined]
    except (QueryError, SearchError, ValueError) as exc:
        print(f"communiques export: {exc}", file=sys.stderr)
        return 2
    if args.format == "xlsx" and args.output is None and sys.stdout.isatty():
        print("communiques export: --format xlsx writes a binary file: give --output FILE",
              file=sys.stderr)
        return 2
    count = 0

    def counted() -> object:
        nonlocal count
        for rec in records:
            count += 1
            yield rec

    if args.output is not None:
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        with open(tmp, "wb") as fh:
            for chunk in stream(counted(), args.format, fields):  # type: ignore[arg-type]
                fh.write(chunk)
        os.replace(tmp, args.output)
        print(f"{count} document(s) → {args.output}", file=sys.stderr)
    else:
        out = sys.stdout.buffer
        for chunk in stream(counted(), args.format, fields):  # type: ignore[arg-type]
            out.write(chunk)
        out.flush()
    return 0


def cmd_document(args: argparse.Namespace) -> int:
    from service.routes.documents import DocumentOut

    si = _search_index(args)
    doc = si.document(args.id, drafts=True)  # type: ignore[attr-defined]
    if doc is None:
        print(f"communiques document: id: no document {args.id!r}", file=sys.stderr)
        return 1
    out = DocumentOut.model_validate(doc).model_dump()
    if args.json:
        _print_json(out)
        return 0
    print(out["title"])
    print(f"{out['date'] or 'sans date'}  {out['collection']}  {out['url']}"
          + ("" if out["published"] else "  (brouillon)"))
    if out["tags_canonical"]:
        print("étiquettes : " + ", ".join(out["tags_canonical"]))
    print()
    print("\n\n".join(x for x in (out["chapeau"], out["body"]) if x))
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from service.routes.documents import SimilarOut

    si = _search_index(args)
    found = si.similar(args.id, limit=args.limit,  # type: ignore[attr-defined]
                       drafts=True)  # type: ignore[attr-defined]
    if found is None:
        print(f"communiques similar: id: no document {args.id!r}", file=sys.stderr)
        return 1
    rows = [SimilarOut.model_validate(r).model_dump() for r in found]
    if args.json:
        _print_json(rows)
        return 0
    for i, r in enumerate(rows, 1):
        print(f"{i:>3}. [{(r['date'] or 'sans date')[:10]}] {r['title']}  ({r['id']}, "
              f"{r['score']:.2f})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from indexer.search import SearchIndex

    stats = SearchIndex(open_index(_index_dir(args)), preload=False).stats(drafts=True)
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    print(f"documents: {stats['documents']}")
    print(f"sans étiquette: {stats['untagged']} ({stats['untagged_share']:.0%})")
    print("par année: " + ", ".join(f"{y}: {n}" for y, n in stats["per_year"].items()))
    print("par collection: " + ", ".join(f"{c}: {n}" for c, n in stats["per_collection"].items()))
    for t in stats["tags"][:20]:
        print(f"  {t['count']:>4}  {t['tag']}  ({t['first']} → {t['last']})")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from indexer.schema import PublishError, publish

    link = _index_dir(args)
    try:
        previous = publish(args.build, link)
    except PublishError as exc:
        print(f"communiques publish: {exc}", file=sys.stderr)
        return 2
    print(f"{link} → {args.build.resolve()}" + (f" (was {previous})" if previous else ""))
    return 0


def _serve_aliases(args: argparse.Namespace) -> int:
    """``serve --aliases FILE``: key the index with FILE first (re-keying its documents' tags
    when FILE changed, in seconds); 0, or 2 with the reason printed."""
    from indexer.ingest import IngestError, apply_alias_file
    from indexer.vocabulary import VocabularyError

    try:
        alias_file = _alias_file(args)
        rekeyed = apply_alias_file(open_index(_index_dir(args), create=True), alias_file)
    except (VocabularyError, IngestError) as exc:
        print(f"communiques serve: --aliases: {exc}", file=sys.stderr)
        return 2
    if rekeyed is not None:
        print(f"tags re-keyed with {alias_file.path.name}: {rekeyed} document(s)",  # type: ignore[attr-defined]
              file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service. Its workers share one folder that this command makes (and removes at
    the end): the rate limits' SQLite file and the metrics' multiprocess files, so that limits
    and counts hold for the service as a whole, not per worker."""
    import shutil
    import tempfile

    import uvicorn

    from service.context import Settings
    from service.tcp import HTTP_PROTOCOL

    if args.aliases is not None and _serve_aliases(args):
        return 2
    os.environ["COMMUNIQUES_INDEX"] = str(_index_dir(args))
    if args.model:
        os.environ["COMMUNIQUES_MODEL"] = str(args.model)
    if args.trusted_proxies is not None:
        os.environ["COMMUNIQUES_TRUSTED_PROXIES"] = args.trusted_proxies
    try:
        Settings().rates()  # a malformed rate stops here, named, not in every worker
    except ValueError as exc:
        print(f"communiques serve: {exc}", file=sys.stderr)
        return 2
    open_index(_index_dir(args), create=True)
    shared = Path(tempfile.mkdtemp(prefix="communiques-serve-"))
    try:
        if not os.environ.get("COMMUNIQUES_RATE_STORAGE"):
            os.environ["COMMUNIQUES_RATE_STORAGE"] = f"sqlite:///{shared / 'rate-limits.sqlite'}"
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            (shared / "metrics").mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared / "metrics")
        # Forwarded headers are the application's business (COMMUNIQUES_TRUSTED_PROXIES), not
        # uvicorn's, which would believe them from any loopback connection.
        uvicorn.run(
            "service.app:create_app", factory=True, host=args.host, port=args.port,
            workers=args.workers, log_level=args.log_level, access_log=False,
            proxy_headers=False, forwarded_allow_ips="", http=HTTP_PROTOCOL,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="communiques",
        description="Recherche et suggestion d'étiquettes pour des communiqués de presse.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index markdown files (recursive, incremental)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _index_arg(p)
    p.add_argument("--prune", action="store_true", help="remove documents whose file is gone")
    p.add_argument("--attachments-root", type=Path, default=None, metavar="DIR",
                   help="folder where /uploads/... attachment paths are found (text of PDF, "
                        "DOCX, ODT, ODS, XLSX and PPTX files)")
    p.add_argument("--attachments-cache", type=Path, default=None, metavar="FILE",
                   help="cache of extracted attachment text (default: INDEX/"
                        "attachment-cache/texts.sqlite); share it between builds")
    spread = p.add_mutually_exclusive_group()
    spread.add_argument("--jobs", type=int, default=1, help="spaCy processes (default 1)")
    spread.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="analyse and write segments on a Dask cluster: a scheduler's "
                             "address (tcp://host:8786), or local:N for N worker processes "
                             "on this machine (needs the cluster extra)")
    p.add_argument("--optimize", action="store_true",
                   help="merge the index into one segment at the end (for a full build that is "
                        "then published: fastest to search, rewrites the whole index)")
    _aliases_arg(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--nice", type=int, default=10, metavar="N",
                   help="CPU priority given up (as nice(1), 0–19, default 10): an ingest "
                        "on the machine that serves leaves the CPU to visitors' requests first")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search the index (the fields of GET /api/search)")
    _query_args(p, required=True)
    p.add_argument("--limit", type=int, default=10, help="hits per page (1–100, default 10)")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--json", action="store_true",
                   help="the hits as JSON, each with the fields of the API's hits")
    p.add_argument("--full", action="store_true",
                   help="the API's whole response as JSON (total, hits, facets, suggestion, notes)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="every match, as GET /api/export writes it")
    _query_args(p, required=False)
    from indexer.export import EXPORT_FIELDS, FORMATS

    p.add_argument("--format", default="csv", choices=list(FORMATS),
                   help="csv (UTF-8 with BOM), csv-excel (';'), xlsx or jsonl (default csv)")
    p.add_argument("--fields", default=None,
                   help=f"comma-separated, among {','.join(EXPORT_FIELDS)}")
    p.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                   help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("document", help="one document, as GET /api/documents/ID gives it")
    p.add_argument("id")
    _index_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_document)

    p = sub.add_parser("similar", help="the documents most like one (GET /api/documents/ID/similar)")
    p.add_argument("id")
    _index_arg(p)
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("stats", help="corpus statistics")
    _index_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser(
        "publish", help="atomically point the index link at a freshly built index folder"
    )
    p.add_argument("build", type=Path, metavar="BUILD_DIR")
    _index_arg(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("serve", help="run the HTTP service")
    _index_arg(p)
    p.add_argument("--model", type=Path, default=None, help="tag model file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    _aliases_arg(p)
    p.add_argument("--log-level", default="info")
    p.add_argument("--trusted-proxies", default=None, metavar="ADDRS",
                   help="addresses or networks (comma-separated) of the reverse proxies whose "
                        "X-Forwarded-For is believed (default: COMMUNIQUES_TRUSTED_PROXIES, "
                        "else none)")
    p.set_defaults(func=cmd_serve)

    try:
        from models.commands import add_commands
    except ImportError:
        pass
    else:
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except IndexError_ as exc:
        print(f"communiques {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
