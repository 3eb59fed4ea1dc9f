"""Search, autocomplete and export: thin HTTP over :mod:`indexer.search`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from indexer.export import FORMATS, check_fields, file_chunks, stream, xlsx_file
from indexer.query import MAX_QUERY_LENGTH, QueryError
from indexer.search import MAX_PAGE_SIZE, SearchError, SearchRequest
from service.auth import Caller
from service.context import AppContext, get_context

router = APIRouter(prefix="/api", tags=["search"])


class HitOut(BaseModel):
    id: str
    path: str
    url: str
    title: str
    title_html: str
    snippet_html: str
    attachment_html: str = ""
    date: str
    tags: list[str]
    tags_canonical: list[str] = []
    collection: str
    score: float
    published: bool = True


class FacetOut(BaseModel):
    value: str
    label: str
    count: int


class SearchOut(BaseModel):
    total: int
    took_ms: float
    page: int
    size: int
    hits: list[HitOut]
    facets: dict[str, list[FacetOut]]
    suggestion: str | None = None
    mode: str
    notes: list[str] = []


class Completion(BaseModel):
    text: str
    kind: Literal["term", "title"]
    id: str | None = None
    url: str | None = None


class AutocompleteOut(BaseModel):
    q: str
    completions: list[Completion]


def search_request(
    viewer: Caller,
    q: Annotated[str, Query(max_length=MAX_QUERY_LENGTH, description="texte de la requête")] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
    sort: Literal["relevance", "date", "-date"] = "relevance",
    tag: Annotated[list[str] | None, Query(max_length=20)] = None,
    collection: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    year: Annotated[int | None, Query(ge=0, le=9999, description="0: sans date")] = None,
    published: bool | None = None,
) -> SearchRequest:
    """Query parameters shared by the search and the export."""
    return SearchRequest(
        q=q, page=page, size=size, sort=sort, tags=[t[:200] for t in tag or []],
        collection=collection or None, category=category or None, date_from=date_from,
        date_to=date_to, year=year, published=published, drafts=viewer.drafts,
    )


def _bad_request(exc: Exception) -> HTTPException:
    return HTTPException(status_code=400, detail=str(exc))


@router.get("/search", response_model=SearchOut)
def search(
    req: Annotated[SearchRequest, Depends(search_request)],
    ctx: Annotated[AppContext, Depends(get_context)],
) -> SearchOut:
    """Search-box and archivist queries: ranked hits with highlights, facets, suggestion."""
    try:
        result = ctx.search.search(req)
    except (QueryError, SearchError) as exc:
        raise _bad_request(exc) from None
    return SearchOut.model_validate(result.to_dict())


@router.get("/autocomplete", response_model=AutocompleteOut)
def autocomplete(
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    q: Annotated[str, Query(max_length=200)] = "",
) -> AutocompleteOut:
    """Up to 8 completions of what is being typed: frequent words, then titles."""
    try:
        items = ctx.search.autocomplete(q, drafts=viewer.drafts)
    except (QueryError, SearchError) as exc:
        raise _bad_request(exc) from None
    return AutocompleteOut(q=q, completions=[Completion(**i) for i in items])


@router.get("/export", response_class=StreamingResponse, responses={200: {
    "description": "every match: CSV (UTF-8 with BOM, ``,``), CSV for French spreadsheets "
                   "(``csv-excel``: ``;``), XLSX or JSON lines (``format``)",
    "content": {"text/csv": {"schema": {"type": "string"}},
                FORMATS["xlsx"][0]: {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string"}}},
}})
def export(
    req: Annotated[SearchRequest, Depends(search_request)],
    ctx: Annotated[AppContext, Depends(get_context)],
    format: Literal["csv", "csv-excel", "xlsx", "jsonl"] = "csv",  # noqa: A002 - public name
    fields: Annotated[str | None, Query(max_length=500, description="comma-separated fields")] = None,
) -> StreamingResponse:
    """Every match of the query, streamed; no page limit. Cells that a spreadsheet would run
    as formulas are neutralised (see :mod:`indexer.export`)."""
    try:
        chosen = check_fields(fields)
        records = ctx.search.export(req)
    except (QueryError, SearchError, ValueError) as exc:
        raise _bad_request(exc) from None
    media, extension = FORMATS[format]
    name = f"communiques-export.{extension}"
    # XLSX is complete before its first byte leaves (see indexer.export.xlsx_file).
    body = file_chunks(xlsx_file(records, chosen)) if format == "xlsx" else stream(
        records, format, chosen)
    return StreamingResponse(
        body, media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class TagStat(BaseModel):
    tag: str
    key: str
    count: int
    first: str
    last: str
    variants: list[str]


class StatsOut(BaseModel):
    documents: int
    per_year: dict[str, int]
    per_collection: dict[str, int]
    tags: list[TagStat]
    untagged: int
    untagged_share: float


@router.get("/stats", response_model=StatsOut)
def stats(ctx: Annotated[AppContext, Depends(get_context)], viewer: Caller) -> StatsOut:
    """Documents per year and collection, tags with first and last use, untagged share
    (drafts counted for readers and writers only)."""
    return StatsOut.model_validate(ctx.search.stats(drafts=viewer.drafts))
