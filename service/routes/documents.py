"""Documents: read one, similar ones, and the key-protected writes (PUT / DELETE)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from indexer.document import DocumentError, decode_source
from indexer.ingest import IngestError, delete_document, upsert_text
from service.auth import require_writer
from service.context import AppContext, get_context

router = APIRouter(prefix="/api/documents", tags=["documents"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$"
COLLECTION_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,49}$"


class AttachmentOut(BaseModel):
    path: str
    name: str = ""
    error: str = ""


class DocumentOut(BaseModel):
    id: str
    path: str
    url: str
    title: str
    date: str
    tags: list[str]
    tags_canonical: list[str] = []
    categories: list[str]
    collection: str
    published: bool
    attachments: list[AttachmentOut]
    chapeau: str
    body: str
    attachment_text: str = ""


class SimilarOut(BaseModel):
    id: str
    title: str
    url: str
    date: str
    tags: list[str]
    tags_canonical: list[str] = []
    collection: str
    score: float


class WriteOut(BaseModel):
    id: str
    status: str
    url: str = ""


def _check_id(doc_id: str) -> None:
    if not re.match(ID_PATTERN, doc_id):
        raise HTTPException(
            status_code=422,
            detail=f"id: {doc_id[:50]!r} must be letters, digits, '.', '_' or '-' (1–200)",
        )


@router.get("/{doc_id}", response_model=DocumentOut)
def get_document(doc_id: str, ctx: Annotated[AppContext, Depends(get_context)]) -> DocumentOut:
    doc = ctx.search.document(doc_id)
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    return DocumentOut.model_validate(doc)


@router.get("/{doc_id}/similar", response_model=list[SimilarOut])
def similar(
    doc_id: str,
    ctx: Annotated[AppContext, Depends(get_context)],
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[SimilarOut]:
    docs = ctx.search.similar(doc_id, limit=limit)
    if docs is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    return [SimilarOut.model_validate(d) for d in docs]


def _source_path(folder: Path, collection: str, doc_id: str) -> Path:
    return folder / collection / f"{doc_id}.md"


def _save_source(target: Path, raw: bytes) -> None:
    """Keep the written file (atomically) so a later re-ingest or rebuild loses nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".md")
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


@router.put("/{doc_id}", response_model=WriteOut, dependencies=[Depends(require_writer)],
            responses={422: {"description": "invalid document; the detail names the field"}})
async def put_document(
    doc_id: str,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_context)],
    collection: Annotated[str, Query(pattern=COLLECTION_PATTERN)] = "communiques",
) -> WriteOut:
    """Create or replace a document from its markdown file (``Content-Type: text/markdown``)."""
    _check_id(doc_id)
    raw = await request.body()
    if len(raw) > ctx.settings.max_body_bytes:
        raise HTTPException(status_code=413, detail="body too large")
    path = _source_path(ctx.settings.documents_dir, collection, doc_id)
    try:
        source = decode_source(raw, doc_id)
        doc, is_new = upsert_text(ctx.search.ix, source, doc_id, collection, str(path))
    except DocumentError as exc:
        raise HTTPException(status_code=422, detail=exc.reason) from None
    except IngestError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    _save_source(path, raw)
    ctx.search.changed()
    return WriteOut(id=doc.id, status="created" if is_new else "updated", url=doc.url)


@router.delete("/{doc_id}", response_model=WriteOut, dependencies=[Depends(require_writer)])
def remove_document(doc_id: str, ctx: Annotated[AppContext, Depends(get_context)]) -> WriteOut:
    _check_id(doc_id)
    try:
        found = delete_document(ctx.search.ix, doc_id)
    except IngestError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    if not found:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    ctx.search.changed()
    for path in ctx.settings.documents_dir.glob(f"*/{doc_id}.md"):
        path.unlink(missing_ok=True)
    return WriteOut(id=doc_id, status="deleted")
