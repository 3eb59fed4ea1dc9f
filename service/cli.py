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


def _site_attachments(paths: list[Path]) -> object | None:
    """For a Jekyll site root given without ``--attachments-root``: a reader of its
    ``_uploads/`` or ``uploads/`` folder (the first site's, when several are given)."""
    from indexer.site import attachment_reader, find_site

    for path in paths:
        site = find_site(path)
        if site is not None and site.uploads is not None:
            return attachment_reader(site)
    return None


def cmd_ingest(args: argparse.Namespace) -> int:
    from indexer.attachments import AttachmentReader
    from indexer.ingest import IngestError, ingest
    from indexer.vocabulary import VocabularyError

    try:
        alias_file = _alias_file(args)
    except VocabularyError as exc:
        print(f"communiques ingest: --aliases: {exc}", file=sys.stderr)
        return 2
    ix = open_index(_index_dir(args), create=True, rebuild=True)
    prepare = AttachmentReader(args.attachments_root) if args.attachments_root else None
    if prepare is None:
        prepare = _site_attachments(args.paths)
    try:
        report = ingest(
            ix, args.paths, prune=args.prune, n_process=args.jobs,
            progress=None if not args.quiet else False, prepare=prepare,
            optimize=args.optimize, alias_file=alias_file,
        )
    except IngestError as exc:
        print(f"communiques ingest: {exc}", file=sys.stderr)
        return 2
    for path, reason in report.rejected:
        print(f"rejected: {path}: {reason}", file=sys.stderr)
    if prepare is not None:
        for path, reason in prepare.problems:
            print(f"attachment: {path}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(report.summary())
    return 1 if report.rejected else 0


def cmd_search(args: argparse.Namespace) -> int:
    from indexer.query import QueryError
    from indexer.search import SearchError, SearchIndex, SearchRequest

    si = SearchIndex(open_index(_index_dir(args)), preload=False)
    req = SearchRequest(
        q=" ".join(args.query), size=args.limit, sort=args.sort, tags=args.tag or [],
        collection=args.collection, year=args.year, date_from=args.date_from,
        date_to=args.date_to,
    )
    try:
        result = si.search(req)
    except (QueryError, SearchError) as exc:
        print(f"communiques search: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = [
            {
                "id": h.id, "path": h.path, "url": h.url, "title": h.title, "date": h.date,
                "tags": h.tags, "collection": h.collection, "score": h.score,
                "title_html": h.title_html, "snippet": h.snippet_html,
            }
            for h in result.hits
        ]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"{result.total} résultat(s) en {result.took_ms} ms")
    for note in result.notes:
        print(f"note: {note}")
    if result.suggestion:
        print(f"Essayez avec : {result.suggestion}")
    for i, h in enumerate(result.hits, 1):
        print(f"{i:>3}. [{h.date[:10]}] {h.title}  ({h.id}, {h.score:.2f})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from indexer.search import SearchIndex

    stats = SearchIndex(open_index(_index_dir(args)), preload=False).stats()
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
    import uvicorn

    if args.aliases is not None and _serve_aliases(args):
        return 2
    os.environ["COMMUNIQUES_INDEX"] = str(_index_dir(args))
    if args.model:
        os.environ["COMMUNIQUES_MODEL"] = str(args.model)
    open_index(_index_dir(args), create=True)
    uvicorn.run(
        "service.app:create_app", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level=args.log_level, access_log=False,
    )
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
                   help="folder where /uploads/... attachment paths are found (PDF text)")
    p.add_argument("--jobs", type=int, default=1, help="spaCy processes (default 1)")
    p.add_argument("--optimize", action="store_true",
                   help="merge the index into one segment at the end (for a full build that is "
                        "then published: fastest to search, rewrites the whole index)")
    _aliases_arg(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search the index")
    p.add_argument("query", nargs="+")
    _index_arg(p)
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--sort", default="relevance", choices=["relevance", "date", "-date"])
    p.add_argument("--tag", action="append")
    p.add_argument("--collection")
    p.add_argument("--year", type=int)
    p.add_argument("--date-from", type=_date)
    p.add_argument("--date-to", type=_date)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

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


if __name__ == "__main__":
    sys.exit(main())
