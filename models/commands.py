"""``communiques train | suggest | evaluate | tags | untagged | feedback``: the tag suggester on
the command line, thin over :class:`models.tagging.TaggingService` where the service has it.

Registered by :func:`add_commands`, which ``service.cli`` calls when this module exists. Exit
status like the other commands: 0 success, 1 when some input file was rejected (the rest was
processed), 2 for usage errors (missing path, no model, unreadable alias file, nothing to learn).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "var/model.pkl"


def default_model_path() -> Path:
    """``$COMMUNIQUES_MODEL`` or ``var/model.pkl``, read when the command runs."""
    return Path(os.environ.get("COMMUNIQUES_MODEL", DEFAULT_MODEL))


def _err(command: str, message: str) -> None:
    print(f"communiques {command}: {message}", file=sys.stderr)


def _positive_k(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 1 <= k <= 20:
        raise argparse.ArgumentTypeError("must be between 1 and 20")
    return k


class _UsageError(Exception):
    """Stops a command with exit status 2; the message is printed by :func:`_handler`."""


def _aliases(args: argparse.Namespace) -> dict[str, list[str]]:
    """The alias file named by ``--aliases``, else the one the index (``--index``, else the
    default index) was keyed with, else the packaged one."""
    from indexer.schema import default_index_dir
    from indexer.vocabulary import VocabularyError, index_aliases, load_aliases

    if args.aliases is None:
        index = getattr(args, "index", None) or default_index_dir()
        record = index_aliases(index)
        if record is not None:
            return {str(k): [str(a) for a in v] for k, v in record["aliases"].items()}
    if args.aliases is not None and not args.aliases.is_file():
        raise _UsageError(f"{args.aliases}: no such alias file")
    try:
        return load_aliases(args.aliases)
    except VocabularyError as exc:
        raise _UsageError(str(exc)) from None


# --- train -------------------------------------------------------------------------------------


def _drafts_from_index(index: Path) -> list[Any]:
    from indexer.schema import open_index
    from indexer.search import SearchIndex
    from models.suggester import Draft

    si = SearchIndex(open_index(index), preload=False)
    engine = si.engine()
    ids = sorted(engine.ids[d] for d in range(len(engine.ids)) if engine.live[d])
    drafts = []
    for doc_id in ids:
        record = si.document(doc_id, drafts=True)  # editors tagged drafts too: learn from them
        if record is not None:
            drafts.append(Draft.from_document(record))
    return drafts


def apply_feedback(drafts: list[Any], feedback_path: Path,
                   aliases: dict[str, list[str]] | None) -> tuple[list[Any], list[str], int]:
    """Fold editors' feedback into the training drafts.

    Accepted tags are added to the document they were given for (rejected ones removed); feedback
    on a draft that is not in the corpus becomes a training draft of its own when its text was
    kept. Returns the drafts, the accepted raw tags (always suggestable) and the number of
    documents or drafts the feedback touched.
    """
    from models.feedback import FeedbackStore
    from models.suggester import Draft
    from models.vocabulary import Vocabulary

    vocab = Vocabulary(aliases)
    by_id = {d.id: d for d in drafts if d.id}
    accepted_tags: list[str] = []
    touched = 0
    out = list(drafts)
    store = FeedbackStore(feedback_path)
    for fb in store.accepted_labels():
        accepted_tags.extend(fb.accepted)
        target = by_id.get(fb.doc_id) if fb.doc_id else None
        if target is None:
            if not (fb.title or fb.text) or not fb.accepted:
                continue
            target = Draft(title=fb.title, text=fb.text, tags=[], id=fb.doc_id or "")
            out.append(target)
            if fb.doc_id:
                by_id[fb.doc_id] = target
        rejected = set(vocab.keys(fb.rejected))
        tags = [t for t in target.tags if vocab.key(t) not in rejected]
        have = set(vocab.keys(tags))
        tags += [t for t in fb.accepted if vocab.key(t) not in have]
        target.tags = tags
        touched += 1
    if store.skipped:
        print(f"note: {feedback_path}: skipped {store.skipped} unreadable line(s)",
              file=sys.stderr)
    return out, accepted_tags, touched


def cmd_train(args: argparse.Namespace) -> int:
    from indexer.ingest import IngestError
    from models.evaluate import load_drafts
    from models.store import save_model
    from models.suggester import TagSuggester

    if not args.corpus and args.index is None:
        _err("train", "give --corpus PATH... or --index DIR")
        return 2
    aliases = _aliases(args)
    t0 = time.perf_counter()
    drafts: list[Any] = []
    rejected: list[tuple[str, str]] = []
    if args.corpus:
        try:
            found, rejected = load_drafts(args.corpus)
        except IngestError as exc:
            _err("train", str(exc))
            return 2
        drafts.extend(found)
    if args.index is not None:
        from indexer.schema import IndexError_

        if not args.index.is_dir():
            _err("train", f"{args.index}: no such index folder")
            return 2
        try:
            drafts.extend(_drafts_from_index(args.index))
        except IndexError_ as exc:
            _err("train", str(exc))
            return 2
    for path, reason in rejected:
        print(f"rejected: {path}: {reason}", file=sys.stderr)
    forced: list[str] = []
    touched = 0
    if args.feedback is not None:
        if not args.feedback.is_file():
            print(f"note: no feedback yet at {args.feedback}", file=sys.stderr)
        drafts, forced, touched = apply_feedback(drafts, args.feedback, aliases)
    model = TagSuggester(aliases=aliases, min_count=args.min_count, analysis=args.analysis)
    try:
        model.fit(drafts, forced=forced)
    except ValueError as exc:
        _err("train", f"nothing to learn from: {exc}")
        return 2
    sources = [str(p) for p in args.corpus or []] + ([str(args.index)] if args.index else [])
    info = save_model(model, args.model, extra={
        "sources": sources, "feedback": str(args.feedback) if args.feedback else None,
        "feedback_targets": touched, "rejected_files": len(rejected),
    })
    summary = {
        "model": str(args.model), "id": info.model_id, "documents": len(drafts),
        "tagged_documents": model.n_documents_, "tags": len(model.labels_),
        "suggestable_tags": len(model.candidates_), "feedback_targets": touched,
        "rejected": len(rejected), "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(
            f"trained on {model.n_documents_} tagged documents of {len(drafts)} "
            f"({len(model.labels_)} tags, {len(model.candidates_)} suggestable"
            + (f", feedback on {touched}" if args.feedback else "")
            + f") in {summary['seconds']} s → {args.model} [{info.model_id}]"
        )
    return 1 if rejected else 0


# --- suggest -----------------------------------------------------------------------------------


def _read_input(name: str) -> Any:  # noqa: ANN401 - a Draft
    """A markdown file, or ``-``: markdown with front matter, else plain text whose first line
    is the title."""
    from indexer.document import DocumentError, decode_source, parse_file, parse_text
    from models.suggester import Draft

    if name != "-":
        # A suggestion reads a title or a text: no date or other field is required.
        return Draft.from_document(parse_file(Path(name), only_text=True))
    raw = sys.stdin.buffer.read()
    source = decode_source(raw, "<stdin>")
    if source.lstrip().startswith("---"):
        return Draft.from_document(
            parse_text(source, "stdin", "stdin", "<stdin>", only_text=True)
        )
    first, _, rest = source.strip().partition("\n")
    if not first.strip():
        raise DocumentError("<stdin>", "empty input")
    return Draft(title=first.strip(), text=rest.strip())


def cmd_suggest(args: argparse.Namespace) -> int:
    from indexer.document import DocumentError
    from models.store import ModelError, load_model

    model_path = args.model or default_model_path()
    try:
        model, info = load_model(model_path)
    except ModelError as exc:
        _err("suggest", str(exc))
        return 2
    for warning in info.warnings:
        _err("suggest", f"warning: {warning}")
    if args.files.count("-") > 1:
        _err("suggest", "'-' (standard input) may be given only once")
        return 2
    status = 0
    entries: list[tuple[str, Any, str | None]] = []
    for name in args.files:
        try:
            entries.append((name, _read_input(name), None))
        except DocumentError as exc:
            entries.append((name, None, exc.reason))
    drafts = [d for _, d, _ in entries if d is not None]
    results = iter(model.suggest_many(drafts, k=args.k, min_score=args.min_score))
    for name, draft, error in entries:
        if draft is None:
            print(f"rejected: {name}: {error}", file=sys.stderr)
            print(json.dumps({"path": name, "error": error}, ensure_ascii=False))
            status = 1
            continue
        tags = [s.to_dict() for s in next(results)]
        print(json.dumps({"path": name, "tags": tags}, ensure_ascii=False), flush=True)
    return status


# --- evaluate ----------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    from indexer.ingest import IngestError
    from models.evaluate import cross_validate, format_report, load_drafts

    aliases = _aliases(args)
    if args.cv < 2:
        _err("evaluate", "--cv must be 2 or more")
        return 2
    try:
        drafts, rejected = load_drafts(args.corpus)
    except IngestError as exc:
        _err("evaluate", str(exc))
        return 2
    for path, reason in rejected:
        print(f"rejected: {path}: {reason}", file=sys.stderr)
    try:
        from models.annif_baseline import annif_executable

        annif = None
        if args.annif or os.environ.get("COMMUNIQUES_ANNIF"):
            annif = annif_executable(args.annif)
            if annif is None:
                _err("evaluate", f"annif: no such command {args.annif or '$COMMUNIQUES_ANNIF'}"
                     " (pip install 'communiques[annif]' in its own environment)")
                return 2
        report = cross_validate(drafts, aliases=aliases, cv=args.cv, seed=args.seed,
                                params={"min_count": args.min_count,
                                        "analysis": args.analysis}, annif=annif)
    except ValueError as exc:
        _err("evaluate", str(exc))
        return 2
    report.rejected = rejected
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    return 1 if rejected else 0


# --- tags, untagged, feedback -----------------------------------------------------------------


def _service(args: argparse.Namespace) -> Any:  # noqa: ANN401 - a TaggingService
    """The tagging service over ``--index`` and ``--model`` (the operator sees drafts)."""
    from indexer.schema import default_index_dir, open_index
    from indexer.search import SearchIndex
    from models.tagging import TaggingService

    index = args.index if args.index is not None else default_index_dir()
    if not Path(index).is_dir():
        raise _UsageError(f"{index}: no such index folder")
    search = SearchIndex(open_index(Path(index)), preload=False)
    return TaggingService(search, args.model or default_model_path(),
                          getattr(args, "feedback", None) or default_feedback_path())


def default_feedback_path() -> Path:
    return Path(os.environ.get("COMMUNIQUES_FEEDBACK", "var/feedback.jsonl"))


def cmd_tags(args: argparse.Namespace) -> int:
    """The vocabulary: each tag with its count, spellings and two example documents."""
    data = _service(args).vocabulary(drafts=not args.public)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    for t in data["tags"]:
        sugg = {True: "", False: "  (jamais suggérée)", None: ""}[t["suggestable"]]
        print(f"{t['count']:>4}  {t['label']}{sugg}")
        for e in t["examples"]:
            print(f"        ex. {e['id']} — {e['title']}")
    print(f"{data['total']} étiquettes")
    return 0


def cmd_untagged(args: argparse.Namespace) -> int:
    """Documents without tags, newest first, with suggestions."""
    from models.tagging import TaggingError

    try:
        data = _service(args).untagged(args.limit, args.k, drafts=not args.public)
    except TaggingError as exc:
        _err("untagged", str(exc))
        return 2
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"{data['total']} document(s) sans étiquette")
    for d in data["documents"]:
        tags = ", ".join(f"{t['tag']} {t['score']:.0%}" + ("" if t["confident"] else "?")
                         for t in d["tags"])
        print(f"  {d['id']}: {tags}")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Record an editor's choices (``--accept/--reject/--add``), or summarise the log."""
    from models.feedback import FeedbackError, FeedbackStore

    path = args.feedback or default_feedback_path()
    if args.accept or args.reject or args.add:
        if not args.doc:
            raise _UsageError("--doc ID is needed to record choices")
        service = _service(args)
        from models.tagging import TaggingError

        try:
            record = service.feedback(args.accept, args.reject, args.add, args.doc,
                                      drafts=True, source="cli")
        except (TaggingError, FeedbackError) as exc:
            _err("feedback", str(exc))
            return 2
        print(json.dumps(record, ensure_ascii=False) if args.json
              else f"recorded {record['id']} in {path}")
        return 0
    store = FeedbackStore(path)
    per_tag: dict[str, dict[str, int]] = {}
    n = 0
    for rec in store.records():
        n += 1
        for kind in ("accepted", "rejected", "added"):
            for tag in rec.get(kind, []):
                per_tag.setdefault(tag, {"accepted": 0, "rejected": 0, "added": 0})[kind] += 1
    summary = {"path": str(path), "records": n, "skipped": store.skipped, "tags": per_tag}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    print(f"{path}: {n} enregistrement(s)" + (f", {store.skipped} illisible(s)"
                                              if store.skipped else ""))
    for tag, c in sorted(per_tag.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"  {tag}: acceptée {c['accepted']}, refusée {c['rejected']}, "
              f"ajoutée {c['added']}")
    return 0


# --- registration ------------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the tag commands on the ``communiques`` parser."""
    p = subparsers.add_parser("train", help="train the tag suggester")
    p.add_argument("--corpus", type=Path, nargs="+", action="extend", metavar="PATH",
                   help="markdown files or folders (recursive)")
    p.add_argument("--index", type=Path, default=None, metavar="DIR",
                   help="also train on the documents of this index")
    p.add_argument("--model", type=Path, default=None, metavar="FILE",
                   help="model file to write (default: $COMMUNIQUES_MODEL or var/model.pkl)")
    p.add_argument("--aliases", type=Path, default=None, metavar="FILE",
                   help="tag alias file (default: the one the index was keyed with)")
    p.add_argument("--feedback", type=Path, default=None, metavar="FILE",
                   help="editors' feedback log (JSONL) to learn from")
    p.add_argument("--min-count", type=int, default=1, metavar="N",
                   help="suggest tags used at least N times (or declared as aliases)")
    _analysis_arg(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_handler("train", cmd_train))

    p = subparsers.add_parser("suggest", help="suggest tags for markdown files or stdin")
    p.add_argument("files", nargs="+", metavar="FILE", help="markdown files; - reads stdin")
    p.add_argument("--model", type=Path, default=None, metavar="FILE",
                   help="model file (default: $COMMUNIQUES_MODEL or var/model.pkl)")
    p.add_argument("--k", type=_positive_k, default=5, help="tags per file (1–20, default 5)")
    p.add_argument("--min-score", type=float, default=None, metavar="S",
                   help="keep tags scoring at least S (default: each tag's tuned threshold)")
    p.set_defaults(func=_handler("suggest", cmd_suggest))

    p = subparsers.add_parser("evaluate", help="cross-validate the suggester and two baselines")
    p.add_argument("--corpus", type=Path, nargs="+", action="extend", required=True,
                   metavar="PATH")
    p.add_argument("--cv", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="fold shuffling seed (default 0)")
    p.add_argument("--aliases", type=Path, default=None, metavar="FILE",
                   help="tag alias file (default: corpus/tag-aliases.yaml)")
    p.add_argument("--min-count", type=int, default=1, metavar="N")
    _analysis_arg(p)
    p.add_argument("--annif", default=None, metavar="EXE",
                   help="also run Annif's tfidf and omikuji backends in the same folds "
                   "(its `annif` command; default $COMMUNIQUES_ANNIF when set)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_handler("evaluate", cmd_evaluate))

    for name, func, text in (("tags", cmd_tags, "the tag vocabulary, with counts and examples"),
                             ("untagged", cmd_untagged, "documents without tags, with suggestions"),
                             ("feedback", cmd_feedback, "record or summarise editors' choices")):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("--index", type=Path, default=None, metavar="DIR",
                       help="index folder (default: $COMMUNIQUES_INDEX or var/index)")
        p.add_argument("--model", type=Path, default=None, metavar="FILE",
                       help="model file (default: $COMMUNIQUES_MODEL or var/model.pkl)")
        p.add_argument("--json", action="store_true", help="print JSON")
        if name in ("tags", "untagged"):
            p.add_argument("--public", action="store_true",
                           help="as an anonymous visitor sees it (no drafts)")
        if name == "untagged":
            p.add_argument("--limit", type=int, default=20, metavar="N")
            p.add_argument("--k", type=_positive_k, default=5, help="tags per document")
        if name == "feedback":
            p.add_argument("--feedback", type=Path, default=None, metavar="FILE",
                           help="the log (default: $COMMUNIQUES_FEEDBACK or var/feedback.jsonl)")
            p.add_argument("--doc", default=None, metavar="ID", help="the document's id")
            for flag in ("accept", "reject", "add"):
                p.add_argument(f"--{flag}", action="append", default=[], metavar="TAG")
        p.set_defaults(func=_handler(name, func))


def _analysis_arg(p: argparse.ArgumentParser) -> None:
    from models.draft import ANALYSES

    p.add_argument("--analysis", choices=ANALYSES, default="table",
                   help="how drafts are read at suggestion time (training always reads the "
                   "full analysis). table (default): regex words, each with the lemma its form "
                   "took in the training documents, no spaCy at suggestion time; full: spaCy "
                   "on each draft; light: regex forms and stems only, for training too")


def _handler(command: str, func: Any) -> Any:  # noqa: ANN401 - a command handler
    """Resolve ``--model``'s default when the command runs (the environment may change) and
    turn usage errors into a message and exit status 2 (``main`` is also called by tests)."""

    def run(args: argparse.Namespace) -> int:
        if getattr(args, "model", "absent") is None and command == "train":
            args.model = default_model_path()
        try:
            return func(args)
        except _UsageError as exc:
            _err(command, str(exc))
            return 2

    run.__doc__ = func.__doc__
    return run
