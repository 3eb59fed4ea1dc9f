"""Moved to :mod:`indexer.vocabulary`: the tag vocabulary belongs to the index."""

from indexer.vocabulary import *  # noqa: F403
