"""Entry points: the HTTP service and the command line, both thin over indexer/ and models/."""
