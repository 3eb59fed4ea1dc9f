"""Search, autocomplete and export: thin HTTP over :mod:`indexer.search`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from indexer.export import EXPORT_FIELDS, FORMATS, check_fields, file_chunks, stream, xlsx_file
from indexer.query import MAX_QUERY_LENGTH, QueryError
from indexer.search import MAX_PAGE_SIZE, SearchError, SearchRequest
from service.auth import Caller
from service.context import AppContext, get_context
from service.openapi import KEY_OPTIONAL, refusal

router = APIRouter(prefix="/api", tags=["search"])


EXAMPLE_HIT = {
    "id": "lancement-de-france-transfert",
    "path": "communiques/lancement-de-france-transfert.md",
    "url": "/espace-presse/lancement-de-france-transfert/",
    "title": "Lancement de France transfert, l’envoi de fichiers volumineux des agents de l’État",
    "title_html": "Lancement de France <mark>transfert</mark>, l’envoi de <mark>fichiers</mark> "
                  "volumineux des agents de l’État",
    "snippet_html": "… L’État lance son propre outil en ligne de <mark>transfert</mark> de "
                    "<mark>fichiers</mark> volumineux, jusqu’à 20 Go, destiné à ses agents …",
    "attachment_html": "",
    "date": "2022-03-25T16:30:00+01:00",
    "tags": ["Sécurité", "Environnement de travail numérique"],
    "tags_canonical": ["Cybersécurité", "Environnement de travail numérique"],
    "collection": "communiques",
    "score": 41.2873,
    "published": True,
}


class HitOut(BaseModel):
    """One matching communiqué, with its words found highlighted."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_HIT]})

    id: str = Field(description="The document's id (its file name without `.md`): the key of "
                    "`/api/documents/{doc_id}`.", examples=["lancement-de-france-transfert"])
    path: str = Field(description="The source file, relative to the corpus root.",
                      examples=["communiques/lancement-de-france-transfert.md"])
    url: str = Field(description="The communiqué's address on the public site.",
                     examples=["/espace-presse/lancement-de-france-transfert/"])
    title: str = Field(description="The title, as plain text.",
                       examples=[EXAMPLE_HIT["title"]])
    title_html: str = Field(description="The title as HTML: the words matched in `<mark>`, "
                            "everything else escaped.", examples=[EXAMPLE_HIT["title_html"]])
    snippet_html: str = Field(description="The passage of the chapeau or body that best "
                              "matches, as HTML (`<mark>` around the words matched, `…` where "
                              "it is cut).", examples=[EXAMPLE_HIT["snippet_html"]])
    attachment_html: str = Field("", description="A passage of an attachment (a press kit "
                                 "PDF…) when the match is there, as HTML; empty otherwise.",
                                 examples=["… le <mark>transfert</mark> de fichiers jusqu’à "
                                           "20 Go …"])
    date: str = Field(description="Publication date and time, ISO 8601 with its offset; empty "
                      "for an undated document.", examples=["2022-03-25T16:30:00+01:00"])
    tags: list[str] = Field(description="The tags as the editors wrote them.",
                            examples=[EXAMPLE_HIT["tags"]])
    tags_canonical: list[str] = Field([], description="The same tags as the vocabulary's "
                                      "labels (one spelling per tag, aliases merged).",
                                      examples=[EXAMPLE_HIT["tags_canonical"]])
    collection: str = Field(description="The collection (the corpus folder): `communiques`, "
                            "`actualites`, `evenements`…", examples=["communiques"])
    score: float = Field(description="Relevance (BM25F and boosts): only comparable within "
                         "one response.", examples=[41.2873])
    published: bool = Field(True, description="`false` for a draft (only ever returned to "
                            "readers and writers).", examples=[True])


class FacetOut(BaseModel):
    """One value of a facet, and how many matches have it."""

    value: str = Field(description="The value to filter with (a tag's key, a collection, a "
                       "year; `0` for undated documents).", examples=["cybersecurite"])
    label: str = Field(description="The value as shown (a tag's canonical label; « sans date » "
                       "for the year `0`).", examples=["Cybersécurité"])
    count: int = Field(description="Matches with this value, over the whole result set.",
                       examples=[4])


class SearchOut(BaseModel):
    """One page of ranked matches, with facets over all of them."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "total": 3,
        "took_ms": 12.4,
        "page": 1,
        "size": 10,
        "hits": [EXAMPLE_HIT],
        "facets": {
            "tag": [{"value": "cybersecurite", "label": "Cybersécurité", "count": 2},
                    {"value": "cloud", "label": "Cloud", "count": 1}],
            "collection": [{"value": "communiques", "label": "communiques", "count": 2},
                           {"value": "actualites", "label": "actualites", "count": 1}],
            "year": [{"value": "2022", "label": "2022", "count": 2},
                     {"value": "2021", "label": "2021", "count": 1}],
        },
        "suggestion": None,
        "mode": "box",
        "notes": [],
    }]})

    total: int = Field(description="Every match (drafts counted only for readers and "
                       "writers).", examples=[3])
    took_ms: float = Field(description="Time spent searching, in milliseconds.",
                           examples=[12.4])
    page: int = Field(description="This page's number (from 1).", examples=[1])
    size: int = Field(description="Hits per page, as asked.", examples=[10])
    hits: list[HitOut] = Field(description="This page's matches, in the order asked for.")
    facets: dict[str, list[FacetOut]] = Field(
        description="Per facet (`tag`, `collection`, `year`), its values over every match, most "
        "frequent first (up to 500 tags).")
    suggestion: str | None = Field(None, description="A corrected query (« Essayez avec… ») "
                                   "when a word is in no document and the correction finds "
                                   "some; null otherwise.", examples=["cybersécurité", None])
    mode: str = Field(description="How the query was read: `box` (plain words, all needed), "
                      "`or` (too few documents held them all), `advanced` (query syntax) or "
                      "`all` (no query: every document).", examples=["box"])
    notes: list[str] = Field([], description="How the query was read, in French, as shown to "
                             "visitors (other readings searched, syntax set aside).",
                             examples=[["cherché aussi : cybersécurité (pour « cyber »)"]])


class Completion(BaseModel):
    """A completion of what is being typed."""

    text: str = Field(description="The completed word (`term`) or a title (`title`).",
                      examples=["cybersécurité"])
    kind: Literal["term", "title"] = Field(description="`term`: a frequent indexed word; "
                                           "`title`: a document's title.", examples=["term"])
    id: str | None = Field(None, description="The document, for a title; null for a term.",
                           examples=["lancement-de-france-transfert", None])
    url: str | None = Field(None, description="The document's address, for a title.",
                            examples=["/espace-presse/lancement-de-france-transfert/", None])


class AutocompleteOut(BaseModel):
    """The completions of a search box's text."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "q": "cyb",
        "completions": [
            {"text": "cybersécurité", "kind": "term", "id": None, "url": None},
            {"text": "Cybersécurité : des parcours de sécurisation pour les administrations "
                     "financés par France Relance", "kind": "title",
             "id": "cybersecurite-des-parcours-de-securisation-pour-les-administrations",
             "url": "/espace-presse/cybersecurite-des-parcours-de-securisation-pour-les-"
                    "administrations/"},
        ],
    }]})

    q: str = Field(description="The text completed, as sent.", examples=["cyb"])
    completions: list[Completion] = Field(description="Up to 8: frequent words first, then "
                                          "titles.")


def search_request(
    viewer: Caller,
    q: Annotated[str, Query(
        max_length=MAX_QUERY_LENGTH,
        description="The query. Plain words are a search box (every word needed, the last one "
        "a prefix, typos forgiven, accents optional); syntax makes it an archivist's query: "
        '`"phrase"`, `OR`, `NOT`/`-`, `title:`, `tag:`, `date:[2018 TO 2020]`, `numéri*` '
        "(see the README's query language). Empty: every document.",
        openapi_examples={
            "search box": {"value": "identité numérique"},
            "phrase": {"value": '"cloud au centre"'},
            "archivist": {"summary": "a tag, a date", "value": "tag:Cybersécurité date:>=2022"},
            "every document": {"value": ""},
        },
    )] = "",
    page: Annotated[int, Query(ge=1, le=10_000, description="The page (from 1); `page × size` "
                               "may not pass 10,000: use the export beyond.",
                               examples=[1, 2])] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Hits per page.",
                               examples=[10, 50])] = 10,
    sort: Annotated[Literal["relevance", "date", "-date"], Query(
        description="`relevance` (best first), `date` (oldest first) or `-date` (newest "
        "first).", examples=["-date"])] = "relevance",
    tag: Annotated[list[str] | None, Query(
        max_length=20, description="Only documents with this tag, in any of its spellings "
        "(or its key, a facet's `value`); repeat it for several (all needed).",
        examples=[["Cybersécurité"], ["Cloud", "État plateforme"]])] = None,
    collection: Annotated[str | None, Query(
        max_length=100, description="Only this collection (a facet's `value`).",
        examples=["communiques"])] = None,
    category: Annotated[str | None, Query(
        max_length=200, description="Only this category, as in the documents' front matter.",
        examples=["Communiqué de presse"])] = None,
    date_from: Annotated[dt.date | None, Query(
        description="Only documents published on this day or later (undated ones are left "
        "out).", examples=["2021-01-01"])] = None,
    date_to: Annotated[dt.date | None, Query(
        description="Only documents published on this day or earlier.",
        examples=["2022-12-31"])] = None,
    year: Annotated[int | None, Query(
        ge=0, le=9999, description="Only documents of this year; `0`: documents without a "
        "date.", examples=[2022, 0])] = None,
    published: Annotated[bool | None, Query(
        description="`true`: published documents only; `false`: drafts only (which only "
        "readers and writers see); absent: both, as the caller may see them.",
        examples=[True])] = None,
) -> SearchRequest:
    """Query parameters shared by the search and the export."""
    return SearchRequest(
        q=q, page=page, size=size, sort=sort, tags=[t[:200] for t in tag or []],
        collection=collection or None, category=category or None, date_from=date_from,
        date_to=date_to, year=year, published=published, drafts=viewer.drafts,
    )


def _bad_request(exc: Exception) -> HTTPException:
    return HTTPException(status_code=400, detail=str(exc))


BAD_QUERY = refusal("The query or a filter is refused; the detail names it (a wildcard "
                    "starting a word, too many expansions, `date_from` after `date_to`, "
                    "`page × size` over 10,000).", "date_from: must not be after date_to")


@router.get("/search", response_model=SearchOut, summary="Search the communiqués",
            openapi_extra=KEY_OPTIONAL, responses={400: BAD_QUERY})
def search(
    req: Annotated[SearchRequest, Depends(search_request)],
    ctx: Annotated[AppContext, Depends(get_context)],
) -> SearchOut:
    """Search-box and archivist queries: ranked hits with highlights, facets over every match,
    and a corrected query when a word is in no document. Use it for a search page (one page of
    hits at a time); for every match at once, use the export."""
    try:
        result = ctx.search.search(req)
    except (QueryError, SearchError) as exc:
        raise _bad_request(exc) from None
    return SearchOut.model_validate(result.to_dict())


@router.get("/autocomplete", response_model=AutocompleteOut, summary="Complete a search box",
            openapi_extra=KEY_OPTIONAL, responses={400: refusal(
                "The text is refused (over 200 characters).",
                "q: too long for autocomplete (limit 200 characters)")})
def autocomplete(
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    q: Annotated[str, Query(max_length=200, description="What has been typed so far; its last "
                            "word is completed.", openapi_examples={
                                "a word": {"value": "cyb"},
                                "a title": {"value": "france trans"}})] = "",
) -> AutocompleteOut:
    """Up to 8 completions of what is being typed: frequent words, then titles. For a search
    box's suggestions, called as the visitor types."""
    try:
        items = ctx.search.autocomplete(q, drafts=viewer.drafts)
    except (QueryError, SearchError) as exc:
        raise _bad_request(exc) from None
    return AutocompleteOut(q=q, completions=[Completion(**i) for i in items])


@router.get("/export", response_class=StreamingResponse, summary="Export every match",
            openapi_extra=KEY_OPTIONAL, responses={
    200: {
        "description": "Every match, as a file (`Content-Disposition: attachment`): CSV "
                       "(UTF-8 with BOM, `,`), CSV for French spreadsheets (`csv-excel`: `;`), "
                       "XLSX or JSON lines, as `format` asks.",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": (
                "id,title,date,tags\r\nlancement-de-france-transfert,"
                "\"Lancement de France transfert, l’envoi de fichiers volumineux des agents de "
                "l’État\",2022-03-25T16:30:00+01:00,Sécurité | Environnement de travail "
                "numérique\r\n")},
            FORMATS["xlsx"][0]: {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string"}, "example": (
                '{"id": "lancement-de-france-transfert", "date": "2022-03-25T16:30:00+01:00", '
                '"tags": ["Sécurité", "Environnement de travail numérique"]}\n')},
        },
    },
    400: refusal("The query, a filter or `fields` is refused; the detail names it.",
                 "fields: unknown auteur; choose from id, title, date, collection, tags, "
                 "tags_canonical, categories, url, path, published, attachments, "
                 "attachment_urls, score"),
})
def export(
    req: Annotated[SearchRequest, Depends(search_request)],
    ctx: Annotated[AppContext, Depends(get_context)],
    format: Annotated[Literal["csv", "csv-excel", "xlsx", "jsonl"], Query(  # noqa: A002
        description="`csv` (UTF-8 with BOM so that Excel reads accents, `,`), `csv-excel` "
        "(`;`, for French Excel and LibreOffice), `xlsx` (one sheet) or `jsonl` (one JSON "
        "object per line, for programs).", examples=["csv-excel"])] = "csv",
    fields: Annotated[str | None, Query(
        max_length=500, description="The columns, comma-separated, in this order; by default "
        f"all of them: {', '.join(EXPORT_FIELDS)}.", examples=["id,title,date,tags"])] = None,
) -> StreamingResponse:
    """Every match of the query and filters, streamed; no page limit (`page` and `size` are
    ignored). For archivists' spreadsheets and programs that need the whole result set. In CSV
    and XLSX, cells that a spreadsheet would run as formulas are neutralised (a leading `'`)."""
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
    """How much one tag is used."""

    tag: str = Field(description="The tag's label (its most used spelling).",
                     examples=["Cybersécurité"])
    key: str = Field(description="Its canonical key, the same for every spelling.",
                     examples=["cybersecurite"])
    count: int = Field(description="Documents with the tag.", examples=[4])
    first: str = Field(description="Day of its first use (`YYYY-MM-DD`; empty when only "
                       "undated documents have it).", examples=["2018-10-30"])
    last: str = Field(description="Day of its last use.", examples=["2024-11-14"])
    variants: list[str] = Field(description="The spellings the documents use for it.",
                                examples=[["Cybersécurité", "Sécurité"]])


class StatsOut(BaseModel):
    """Statistics over the documents the caller may see."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "documents": 1874,
        "per_year": {"2021": 212, "2022": 198, "sans date": 3},
        "per_collection": {"communiques": 905, "actualites": 702, "evenements": 267},
        "tags": [{"tag": "Cybersécurité", "key": "cybersecurite", "count": 4,
                  "first": "2018-10-30", "last": "2024-11-14",
                  "variants": ["Cybersécurité", "Sécurité"]}],
        "untagged": 143,
        "untagged_share": 0.0763,
    }]})

    documents: int = Field(description="Documents counted (drafts for readers and writers "
                           "only).", examples=[1874])
    per_year: dict[str, int] = Field(description="Documents per year, oldest first; the "
                                     "undated ones last, under `sans date`.",
                                     examples=[{"2021": 212, "2022": 198, "sans date": 3}])
    per_collection: dict[str, int] = Field(description="Documents per collection.",
                                           examples=[{"communiques": 905, "actualites": 702}])
    tags: list[TagStat] = Field(description="Every tag in use, most used first.")
    untagged: int = Field(description="Documents without any tag.", examples=[143])
    untagged_share: float = Field(description="The untagged documents' share, from 0 to 1.",
                                  examples=[0.0763])


@router.get("/stats", response_model=StatsOut, summary="Corpus statistics",
            openapi_extra=KEY_OPTIONAL)
def stats(ctx: Annotated[AppContext, Depends(get_context)], viewer: Caller) -> StatsOut:
    """Documents per year and collection, tags with their first and last use, and the share
    of untagged documents: for archivists' reports and the editors' tagging work."""
    return StatsOut.model_validate(ctx.search.stats(drafts=viewer.drafts))
