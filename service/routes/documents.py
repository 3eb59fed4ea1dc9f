"""Documents: read one, similar ones, and the key-protected writes (PUT / DELETE)."""

from __future__ import annotations

from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from indexer.document import DocumentError, decode_source
from indexer.ids import ID_MAX, ID_RE
from indexer.ingest import WriteLockBusy, WriteResult, delete_document, upsert_text
from service.auth import Caller, require_writer
from service.context import AppContext, get_context

router = APIRouter(prefix="/api/documents", tags=["documents"])

COLLECTION_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,49}$"


class AttachmentOut(BaseModel):
    path: str
    name: str = ""
    error: str = ""
    url: str = ""
    type: str = ""
    size: int | None = None


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
    if ID_RE.fullmatch(doc_id) is None:  # whole: ``$`` would let a final newline through
        raise HTTPException(
            status_code=422,
            detail=f"id: {doc_id[:50]!r} must be letters, digits, '.', '_' or '-' "
                   f"(1–{ID_MAX}, starting with a letter or a digit)",
        )


@router.get("/{doc_id}", response_model=DocumentOut)
def get_document(doc_id: str, ctx: Annotated[AppContext, Depends(get_context)],
                 viewer: Caller) -> DocumentOut:
    """One document; a draft only for readers and writers (404 otherwise, as if unknown)."""
    doc = ctx.search.document(doc_id, drafts=viewer.drafts)
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    return DocumentOut.model_validate(doc)


@router.get("/{doc_id}/similar", response_model=list[SimilarOut])
def similar(
    doc_id: str,
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[SimilarOut]:
    docs = ctx.search.similar(doc_id, limit=limit, drafts=viewer.drafts)
    if docs is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    return [SimilarOut.model_validate(d) for d in docs]


WRITE_THREADS = 4
"""API writes run in worker threads, at most this many at a time per worker process (the
others queue without a thread): however many writes wait for the index's write lock, the
threads that answer reads stay free."""
_write_limiter: anyio.CapacityLimiter | None = None


def _limiter() -> anyio.CapacityLimiter:
    global _write_limiter
    if _write_limiter is None:  # made on the event loop of the worker that uses it
        _write_limiter = anyio.CapacityLimiter(WRITE_THREADS)
    return _write_limiter


def _busy(exc: WriteLockBusy) -> HTTPException:
    return HTTPException(status_code=503, detail=str(exc),
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


RETRY_AFTER_SECONDS = 2


@router.put("/{doc_id}", response_model=WriteOut, dependencies=[Depends(require_writer)],
            responses={422: {"description": "invalid document; the detail names the field"},
                       503: {"description": "the index stayed locked by another writer; "
                                            "send again after Retry-After seconds"}})
async def put_document(
    doc_id: str,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_context)],
    collection: Annotated[str, Query(pattern=COLLECTION_PATTERN)] = "communiques",
) -> WriteOut:
    """Create or replace a document from its markdown file (``Content-Type: text/markdown``).

    Documents written here win over files of the same id in ingested folders (see the
    README's source rule); moving one to another ``collection`` removes its old file. The
    body is read on the event loop; parsing, analysis and the write run in a worker thread
    (the write lock may be held by an ingest: this worker meanwhile answers other requests).
    """
    _check_id(doc_id)
    raw = await request.body()
    if len(raw) > ctx.settings.max_body_bytes:
        raise HTTPException(status_code=413, detail="body too large")
    folder = ctx.settings.documents_dir

    def write() -> WriteResult:
        source = decode_source(raw, doc_id)
        return upsert_text(ctx.search.ix, source, doc_id, collection, folder, raw)

    try:
        result = await anyio.to_thread.run_sync(write, limiter=_limiter())
    except DocumentError as exc:
        raise HTTPException(status_code=422, detail=exc.reason) from None
    except WriteLockBusy as exc:
        raise _busy(exc) from None
    ctx.search.changed()
    doc = result.doc
    return WriteOut(id=doc.id, status="created" if result.created else "updated", url=doc.url)


@router.delete("/{doc_id}", response_model=WriteOut, dependencies=[Depends(require_writer)],
               responses={503: {"description": "the index stayed locked by another writer; "
                                               "send again after Retry-After seconds"}})
async def remove_document(doc_id: str,
                          ctx: Annotated[AppContext, Depends(get_context)]) -> WriteOut:
    """Remove a document and the API's file of it (in a worker thread, like ``PUT``)."""
    _check_id(doc_id)
    try:
        found = await anyio.to_thread.run_sync(
            delete_document, ctx.search.ix, doc_id, ctx.settings.documents_dir,
            limiter=_limiter())
    except WriteLockBusy as exc:
        raise _busy(exc) from None
    if not found:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    ctx.search.changed()
    return WriteOut(id=doc_id, status="deleted")
