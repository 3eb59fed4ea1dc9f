"""Documents: read one, similar ones, and the key-protected writes (PUT / DELETE)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from indexer.document import DocumentError
from indexer.ids import ID_MAX, ID_RE
from indexer.ingest import WriteLockBusy
from service.auth import Caller, require_writer
from service.context import AppContext, get_context
from service.openapi import KEY_OPTIONAL, RETRY_AFTER, WRITER_KEY, refusal
from service.write_process import WriteProcessLost, delete_by_id, write_document

router = APIRouter(prefix="/api/documents", tags=["documents"])

COLLECTION_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,49}$"


EXAMPLE_ID = "lancement-de-france-transfert"
EXAMPLE_TITLE = ("Lancement de France transfert, l’envoi de fichiers volumineux des agents de "
                 "l’État")
EXAMPLE_ATTACHMENT = {
    "path": "uploads/CP_France_transfert_mars2022.pdf",
    "name": "Communiqué de presse",
    "error": "",
    "url": "/uploads/CP_France_transfert_mars2022.pdf",
    "type": "PDF",
    "size": 182734,
}
EXAMPLE_SOURCE = """---
title: 'Lancement de France transfert, l’envoi de fichiers volumineux des agents de l’État'
date: 2022-03-25 16:30:00 +01:00
categories:
- Communiqué de presse
tags:
- Sécurité
- Environnement de travail numérique
communique_file: uploads/CP_France_transfert_mars2022.pdf
chapeau-text: L’État lance son propre outil en ligne de transfert de fichiers volumineux,
  jusqu’à 20 Go, destiné à ses agents.
---

France transfert permet aux agents publics d’envoyer des fichiers jusqu’à 20 Go, chiffrés
pendant leur transfert, à des destinataires internes ou externes à l’administration.
"""
DOC_ID = Path(description="The document's id: its file name without `.md` (letters, digits, "
              "`.`, `_` or `-`, starting with a letter or a digit, at most 255 characters).",
              openapi_examples={"France transfert": {"value": EXAMPLE_ID}})


class AttachmentOut(BaseModel):
    """A file attached to a communiqué (a press kit PDF, an office file)."""

    path: str = Field(description="The file as the front matter names it, relative to the "
                      "site's root.", examples=[EXAMPLE_ATTACHMENT["path"]])
    name: str = Field("", description="The link's text given by the front matter (empty: "
                      "none given).", examples=["Communiqué de presse"])
    error: str = Field("", description="Why its text could not be read (missing file, "
                       "unreadable PDF…); empty when it was.", examples=[""])
    url: str = Field("", description="Its address on the public site.",
                     examples=[EXAMPLE_ATTACHMENT["url"]])
    type: str = Field("", description="Its format, as the design system names it (`PDF`, "
                      "`DOCX`…).", examples=["PDF"])
    size: int | None = Field(None, description="Its size in bytes; null when the file was not "
                             "found.", examples=[182734, None])


class DocumentOut(BaseModel):
    """One communiqué, whole."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": EXAMPLE_ID,
        "path": f"communiques/{EXAMPLE_ID}.md",
        "url": f"/espace-presse/{EXAMPLE_ID}/",
        "title": EXAMPLE_TITLE,
        "date": "2022-03-25T16:30:00+01:00",
        "tags": ["Sécurité", "Environnement de travail numérique"],
        "tags_canonical": ["Cybersécurité", "Environnement de travail numérique"],
        "categories": ["Communiqué de presse"],
        "collection": "communiques",
        "published": True,
        "attachments": [EXAMPLE_ATTACHMENT],
        "chapeau": "L’État lance son propre outil en ligne de transfert de fichiers "
                   "volumineux, jusqu’à 20 Go, destiné à ses agents.",
        "body": "France transfert permet aux agents publics d’envoyer des fichiers jusqu’à "
                "20 Go, chiffrés pendant leur transfert, à des destinataires internes ou "
                "externes à l’administration.",
        "attachment_text": "",
    }]})

    id: str = Field(description="The document's id (its file name without `.md`).",
                    examples=[EXAMPLE_ID])
    path: str = Field(description="The source file, relative to the corpus root.",
                      examples=[f"communiques/{EXAMPLE_ID}.md"])
    url: str = Field(description="Its address on the public site.",
                     examples=[f"/espace-presse/{EXAMPLE_ID}/"])
    title: str = Field(description="The title.", examples=[EXAMPLE_TITLE])
    date: str = Field(description="Publication date and time, ISO 8601 with its offset; empty "
                      "for an undated document.", examples=["2022-03-25T16:30:00+01:00"])
    tags: list[str] = Field(description="The tags as the editors wrote them.",
                            examples=[["Sécurité", "Environnement de travail numérique"]])
    tags_canonical: list[str] = Field([], description="The same tags as the vocabulary's "
                                      "labels (one spelling per tag, aliases merged).",
                                      examples=[["Cybersécurité",
                                                 "Environnement de travail numérique"]])
    categories: list[str] = Field(description="The categories of its front matter.",
                                  examples=[["Communiqué de presse"]])
    collection: str = Field(description="Its collection (the corpus folder).",
                            examples=["communiques"])
    published: bool = Field(description="`false` for a draft (only ever returned to readers "
                            "and writers).", examples=[True])
    attachments: list[AttachmentOut] = Field(description="The files attached to it.")
    chapeau: str = Field(description="The standfirst (`chapeau-text`), as plain text.",
                         examples=["L’État lance son propre outil en ligne de transfert de "
                                   "fichiers volumineux, jusqu’à 20 Go, destiné à ses agents."])
    body: str = Field(description="The body as plain text (markdown removed), paragraphs "
                      "separated by a blank line.",
                      examples=["France transfert permet aux agents publics d’envoyer des "
                                "fichiers jusqu’à 20 Go."])
    attachment_text: str = Field("", description="The text read from its attachments (cut "
                                 "at a limit), searched with the document.",
                                 examples=["Paris, le 25 mars 2022. France transfert…"])


class SimilarOut(BaseModel):
    """A communiqué close to the one asked about."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "la-suite-numerique-des-outils-collaboratifs-souverains-pour-les-agents-publics",
        "title": "La Suite numérique : des outils collaboratifs souverains pour les agents "
                 "publics",
        "url": "/espace-presse/la-suite-numerique-des-outils-collaboratifs-souverains-pour-"
               "les-agents-publics/",
        "date": "2024-06-18T10:00:00+02:00",
        "tags": ["Environnement de travail numérique", "Logiciels libres"],
        "tags_canonical": ["Environnement de travail numérique", "Logiciels libres"],
        "collection": "communiques",
        "score": 31.57,
    }]})

    id: str = Field(description="The similar document's id.",
                    examples=["la-suite-numerique-des-outils-collaboratifs-souverains-pour-"
                              "les-agents-publics"])
    title: str = Field(description="Its title.", examples=["La Suite numérique : des outils "
                       "collaboratifs souverains pour les agents publics"])
    url: str = Field(description="Its address on the public site.",
                     examples=["/espace-presse/la-suite-numerique-des-outils-collaboratifs-"
                               "souverains-pour-les-agents-publics/"])
    date: str = Field(description="Its publication date, ISO 8601 (empty: undated).",
                      examples=["2024-06-18T10:00:00+02:00"])
    tags: list[str] = Field(description="Its tags as the editors wrote them.",
                            examples=[["Environnement de travail numérique"]])
    tags_canonical: list[str] = Field([], description="Its tags as the vocabulary's labels.",
                                      examples=[["Environnement de travail numérique"]])
    collection: str = Field(description="Its collection.", examples=["communiques"])
    score: float = Field(description="How close it is (higher is closer; only comparable "
                         "within one response).", examples=[31.57])


class WriteOut(BaseModel):
    """What a write did."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": EXAMPLE_ID, "status": "created", "url": f"/espace-presse/{EXAMPLE_ID}/"},
        {"id": EXAMPLE_ID, "status": "deleted", "url": ""},
    ]})

    id: str = Field(description="The document written or removed.", examples=[EXAMPLE_ID])
    status: str = Field(description="`created`, `updated` or `deleted`.",
                        examples=["created"])
    url: str = Field("", description="Its address on the public site (empty once deleted).",
                     examples=[f"/espace-presse/{EXAMPLE_ID}/"])


def _check_id(doc_id: str) -> None:
    if ID_RE.fullmatch(doc_id) is None:  # whole: ``$`` would let a final newline through
        raise HTTPException(
            status_code=422,
            detail=f"id: {doc_id[:50]!r} must be letters, digits, '.', '_' or '-' "
                   f"(1–{ID_MAX}, starting with a letter or a digit)",
        )


NOT_FOUND = refusal("No document with this id, or a draft and the caller is neither a reader "
                    "nor a writer (a draft is then unknown).",
                    f"no document with id {EXAMPLE_ID!r}")


@router.get("/{doc_id}", response_model=DocumentOut, summary="Read a communiqué",
            openapi_extra=KEY_OPTIONAL, responses={404: NOT_FOUND})
def get_document(doc_id: Annotated[str, DOC_ID], ctx: Annotated[AppContext, Depends(get_context)],
                 viewer: Caller) -> DocumentOut:
    """One communiqué, whole: its metadata, chapeau, body as plain text and attachments. For a
    document page, or a program that reads what a search found."""
    doc = ctx.search.document(doc_id, drafts=viewer.drafts)
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    return DocumentOut.model_validate(doc)


@router.get("/{doc_id}/similar", response_model=list[SimilarOut],
            summary="Communiqués like this one", openapi_extra=KEY_OPTIONAL,
            responses={404: NOT_FOUND})
def similar(
    doc_id: Annotated[str, DOC_ID],
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    limit: Annotated[int, Query(ge=1, le=20, description="How many documents at most.",
                                examples=[5])] = 5,
) -> list[SimilarOut]:
    """The documents closest to this one by their words (its own left out), closest first: for
    a « see also » list beside a communiqué."""
    docs = ctx.search.similar(doc_id, limit=limit, drafts=viewer.drafts)
    if docs is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    return [SimilarOut.model_validate(d) for d in docs]


def _busy(exc: Exception) -> HTTPException:
    return HTTPException(status_code=503, detail=str(exc),
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


RETRY_AFTER_SECONDS = 2


def _index_dir(ctx: AppContext) -> str:
    """The folder of the index served now (a published link followed: the write goes where
    the reads come from)."""
    return str(ctx.search.ix.storage.folder)
BUSY = {**refusal("The index stayed locked by another writer (an ingest) for "
                  "`COMMUNIQUES_WRITE_WAIT` seconds; nothing was written: send again after "
                  "`Retry-After` seconds.",
                  "the index is locked by another writer; try again later"),
        "headers": RETRY_AFTER}
MARKDOWN_BODY = {"requestBody": {
    "required": True,
    "description": "The communiqué's markdown file, as the site stores it: YAML front matter "
                   "(`title` required; `date`, `tags`, `categories`, `chapeau-text`, "
                   "`communique_file`, `published: false` for a draft…), then the body. UTF-8; "
                   "at most `COMMUNIQUES_MAX_BODY_BYTES` (1,000,000 bytes by default).",
    "content": {"text/markdown": {"schema": {"type": "string"}, "example": EXAMPLE_SOURCE}},
}}


@router.put("/{doc_id}", response_model=WriteOut, dependencies=[Depends(require_writer)],
            summary="Create or replace a communiqué", openapi_extra={**WRITER_KEY,
                                                                     **MARKDOWN_BODY},
            responses={200: {"description": "Written: `status` says `created` or `updated`."},
                       422: refusal("The id or the document is invalid; the detail names the "
                                    "field (a missing title, a date out of range, a file that "
                                    "is not UTF-8…).", "field 'title' is missing"),
                       503: BUSY})
async def put_document(
    doc_id: Annotated[str, DOC_ID],
    request: Request,
    ctx: Annotated[AppContext, Depends(get_context)],
    collection: Annotated[str, Query(
        pattern=COLLECTION_PATTERN, description="The collection to file it in (lowercase "
        "letters, digits, `_` or `-`); moving a document to another one removes its old file.",
        examples=["communiques", "actualites"])] = "communiques",
) -> WriteOut:
    """Create or replace a communiqué from its markdown file (`Content-Type: text/markdown`);
    it is searched as soon as this answers (by the service's other workers, a fraction of a
    second later). For the editors' publishing tools.

    Documents written here win over files of the same id in ingested folders (see the
    README's source rule), and are kept as files under `COMMUNIQUES_DOCUMENTS`. A write waits
    for the index's write lock (an ingest may hold it) up to `COMMUNIQUES_WRITE_WAIT` seconds.
    \f
    The body is read on the event loop; parsing, analysis and the write run in the worker's
    write process (:mod:`service.write_process`): the write lock may be held by an ingest,
    and a write's CPU must not hold up this worker's reads.
    """
    _check_id(doc_id)
    raw = await request.body()
    if len(raw) > ctx.settings.max_body_bytes:
        raise HTTPException(status_code=413, detail="body too large")
    folder = ctx.settings.documents_dir
    try:
        result = await ctx.writes.run(write_document, _index_dir(ctx), raw, doc_id, collection,
                                      str(folder) if folder is not None else None)
    except DocumentError as exc:
        raise HTTPException(status_code=422, detail=exc.reason) from None
    except (WriteLockBusy, WriteProcessLost) as exc:
        raise _busy(exc) from None
    ctx.search.changed()
    return WriteOut(id=result.id, status="created" if result.created else "updated",
                    url=result.url)


@router.delete("/{doc_id}", response_model=WriteOut, dependencies=[Depends(require_writer)],
               summary="Remove a communiqué", openapi_extra=WRITER_KEY,
               responses={200: {"description": "Removed: `status` is `deleted`."},
                          404: refusal("No document with this id.",
                                       f"no document with id {EXAMPLE_ID!r}"),
                          422: refusal("The id is not a valid id.",
                                       "id: 'mon communiqué' must be letters, digits, '.', '_' "
                                       "or '-' (1–255, starting with a letter or a digit)"),
                          503: BUSY})
async def remove_document(doc_id: Annotated[str, DOC_ID],
                          ctx: Annotated[AppContext, Depends(get_context)]) -> WriteOut:
    """Remove a communiqué from the index, and the file a `PUT` made of it; a file in an
    ingested folder comes back at the next ingest unless it is removed there too.
    \f
    In the write process, like ``PUT``."""
    _check_id(doc_id)
    folder = ctx.settings.documents_dir
    try:
        found = await ctx.writes.run(delete_by_id, _index_dir(ctx), doc_id,
                                     str(folder) if folder is not None else None)
    except (WriteLockBusy, WriteProcessLost) as exc:
        raise _busy(exc) from None
    if not found:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    ctx.search.changed()
    return WriteOut(id=doc_id, status="deleted")
