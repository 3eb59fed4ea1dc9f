"""The index's codec: Whoosh's own, minus two costs that buy this service nothing.

- **Stored fields as plain pickles.** A hit's stored fields (title, chapeau, body, attachment
  text) are read once per hit shown, and Whoosh compresses each document's with zlib.
  Decompressing was half of reading them (26 µs of 54 for a 3,700-byte document), paid for
  every hit of a results page read for the first time; the saving on disk is about 1.8× on
  those fields only (postings, the bulk of an index, are not affected).
- **No field-length statistics in posting blocks.** Whoosh reads every posting's document
  length back from the column it has just written, to keep each block's shortest and longest
  document: inputs of its own scorers' block skipping (``block_quality``). Searches here are
  scored by :class:`indexer.engine.Engine` from the posting lists, never by Whoosh's matchers,
  so those figures are never read; computing them was a sixth of a light ingest's CPU
  (427,688 lookups for 600 documents). Field lengths themselves (BM25's) are kept as before.

Segments written before keep Whoosh's codec, which the table of contents names for each
segment, so an index mixes both until its segments are merged. This class is named in every
table of contents written with it: keep its module and name.
"""

from __future__ import annotations

from whoosh import columns
from whoosh.codec.whoosh3 import W3Codec, W3PerDocReader, W3PerDocWriter

PLAIN_STORED = columns.PickleColumn(columns.VarBytesColumn())
"""Stored fields, pickled, not compressed."""


class PlainStoredWriter(W3PerDocWriter):
    """Writes the ``_stored`` column as :data:`PLAIN_STORED`."""

    def _create_column(self, fieldname: str, column: columns.Column) -> None:
        if fieldname == "_stored":
            column = PLAIN_STORED
        super()._create_column(fieldname, column)


class PlainStoredReader(W3PerDocReader):
    """Reads the ``_stored`` column as :data:`PLAIN_STORED`."""

    def stored_fields(self, docnum: int) -> dict:
        value = self._cached_reader("_stored", PLAIN_STORED)[docnum]
        return {} if value is None else value


class IndexCodec(W3Codec):
    """Whoosh's codec, stored fields not compressed, blocks without length statistics
    (posting blocks compressed or not as asked)."""

    length_stats = False

    def per_document_writer(self, storage, segment) -> PlainStoredWriter:  # noqa: ANN001 - Whoosh's
        return PlainStoredWriter(self, storage, segment)

    def per_document_reader(self, storage, segment) -> PlainStoredReader:  # noqa: ANN001 - Whoosh's
        return PlainStoredReader(storage, segment)
