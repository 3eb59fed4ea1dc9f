"""Document ids: a file's stem, or the id of an API write, matched whole.

Letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a digit. The real site's file
names reach 244 characters (slugs of long titles), so the bound is the file system's (255 bytes
for a name), not a round 200 that would drop real documents.
"""

from __future__ import annotations

import re

ID_MAX = 255
ID_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{ID_MAX - 1}}}"
ID_RE = re.compile(ID_PATTERN)


def id_problem(doc_id: str) -> str | None:
    """Why ``doc_id`` is not a valid id, or None. ``fullmatch``: ``$`` in ``re.match`` would
    let a trailing newline through (``a\\n``)."""
    if ID_RE.fullmatch(doc_id):
        return None
    shown = repr(doc_id[:60]) + ("…" if len(doc_id) > 60 else "")
    if len(doc_id) > ID_MAX:
        return f"file name {shown} is too long for an id ({len(doc_id)} characters, limit {ID_MAX})"
    return (
        f"file name {shown} is not a valid id (letters, digits, '.', '_' or '-', "
        "starting with a letter or a digit)"
    )
