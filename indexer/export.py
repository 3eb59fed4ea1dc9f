"""Exports that open cleanly in a spreadsheet: CSV (UTF-8 with BOM), CSV for French
spreadsheets (``;``), XLSX, and JSON lines, over the records :mod:`indexer.search` produces.

Spreadsheets run a cell that starts like a formula: a title ``=HYPERLINK(...)`` would become a
live link in Excel or LibreOffice. Every text cell goes through :func:`spreadsheet_safe` (the
OWASP rule: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
prefixed with ``'``), in one place, for CSV and XLSX alike. JSON lines are data, not a sheet,
and keep the values as they are. Booleans are ``true``/``false`` and dates ISO 8601 in every
format; no server path is ever written (paths are relative to the corpus root).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO, Any

EXPORT_FIELDS = ["id", "title", "date", "collection", "tags", "tags_canonical", "categories",
                 "url", "path", "published", "attachments", "attachment_urls", "score"]
"""Every exportable field, in column order; ``tags`` are the editors' spellings, and
``tags_canonical`` the vocabulary's labels."""

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "csv-excel": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "jsonl": ("application/x-ndjson", "jsonl"),
}
"""Export format → (media type, file extension)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""
LIST_SEPARATOR = " | "
BOM = "\ufeff"
"""Excel reads a CSV as UTF-8 only when it starts with this mark (else as Windows-1252)."""


def spreadsheet_safe(value: str) -> str:
    """A text cell a spreadsheet shows as text: formula-like values get a leading ``'``.

    The rule OWASP recommends: prefix any cell starting with ``=``, ``+``, ``-``, ``@``, tab
    or carriage return (after which the quote shows, but nothing runs). Separators and quotes
    inside the cell are the CSV writer's business (it quotes the cell).
    """
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@lru_cache(maxsize=16_384)
def public_path(path: str, collection: str) -> str:
    """A document's source path relative to the corpus root, never the server's own path.

    The part from the collection's folder on (``_communiques/2020/x.md``,
    ``communiques/x.md``); the file's name alone when no folder names the collection.
    Cached: every hit of every page asks it.
    """
    if not path:
        return ""
    if path.startswith("api:"):
        path = path[4:]
    parts = PureWindowsPath(path).parts if "\\" in path else PurePosixPath(path).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].lstrip("_") == collection and collection:
            return "/".join(parts[i:])
    return parts[-1] if parts else ""


def cell(value: Any, xml: bool = False) -> str | int | float:
    """One record value as a sheet cell: lists joined, booleans ``true``/``false``, numbers
    kept as numbers, text made :func:`spreadsheet_safe`. With ``xml`` (XLSX), the control
    characters XML 1.0 cannot hold are dropped first, so none can hide a formula's start."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        value = LIST_SEPARATOR.join(
            _attachment_cell(v) if isinstance(v, dict) else str(v) for v in value
        )
    text = str(value)
    if xml:
        text = "".join(ch for ch in text if ch >= " " or ch in "\t\n\r")
    return spreadsheet_safe(text)


def _attachment_cell(att: dict[str, Any]) -> str:
    """An attachment as its name (else its site path): the ``attachment_urls`` column gives
    the addresses an archivist can open, in the same order."""
    return str(att.get("name") or att.get("path") or att.get("url") or "")


def check_fields(fields: str | None) -> list[str]:
    """The fields asked for (comma-separated), in that order; ValueError names unknown ones."""
    if not fields:
        return list(EXPORT_FIELDS)
    chosen = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in EXPORT_FIELDS]
    if unknown or not chosen:
        raise ValueError(
            f"fields: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(EXPORT_FIELDS)}"
        )
    return chosen


def stream(records: Iterable[dict[str, Any]], fmt: str, fields: list[str]) -> Iterator[bytes]:
    """The export in ``fmt`` (see :data:`FORMATS`), produced as records arrive."""
    if fmt == "jsonl":
        return _jsonl(records, fields)
    if fmt in ("csv", "csv-excel"):
        return _csv(records, fields, delimiter=";" if fmt == "csv-excel" else ",")
    if fmt == "xlsx":
        return _xlsx(records, fields)
    raise ValueError(f"format: must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _jsonl(records: Iterable[dict[str, Any]], fields: list[str]) -> Iterator[bytes]:
    for rec in records:
        yield (json.dumps({f: rec.get(f) for f in fields}, ensure_ascii=False) + "\n").encode()


def _csv(records: Iterable[dict[str, Any]], fields: list[str], delimiter: str) -> Iterator[bytes]:
    buf = io.StringIO()
    buf.write(BOM)
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(fields)
    for i, rec in enumerate(records):
        writer.writerow([cell(rec.get(f)) for f in fields])
        if i % 200 == 199:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


XLSX_CHUNK = 64 * 1024


def xlsx_file(records: Iterable[dict[str, Any]], fields: list[str]) -> IO[bytes]:
    """The whole XLSX workbook in a temporary file, rewound, written by openpyxl in write-only
    mode (rows go to disk as they come: memory stays flat whatever the number of matches).

    Built before anything is sent: a zip file's directory comes last, so the bytes could only
    leave once the sheet is complete anyway, and a failure then answers an error instead of
    a truncated file that a spreadsheet cannot open."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("communiques")
    ws.append(fields)
    for rec in records:
        ws.append([cell(rec.get(f), xml=True) for f in fields])
    fh = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, closed by file_chunks
    try:
        wb.save(fh)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh


def file_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    """A file's bytes in chunks, closing it at the end (or when the client goes away)."""
    try:
        while chunk := fh.read(XLSX_CHUNK):
            yield chunk
    finally:
        fh.close()


def _xlsx(records: Iterable[dict[str, Any]], fields: list[str]) -> Iterator[bytes]:
    yield from file_chunks(xlsx_file(records, fields))
