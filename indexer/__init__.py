"""Indexing side of communiques: documents, French analysis, schema, ingest and search."""
