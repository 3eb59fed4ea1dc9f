"""HTTP routers, one per area: search, documents, tags, pages."""
