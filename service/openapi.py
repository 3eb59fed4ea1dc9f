"""The OpenAPI description (``/openapi.json``, shown by ``/docs`` and ``/redoc``).

The routes describe themselves: a summary and a description per operation, a description and
examples per parameter, models whose fields are described, with examples. This module holds
what they share and what no single route knows, applied once by :func:`finish`:

* **who may call** an operation: a route declares :data:`NO_KEY`, :data:`KEY_OPTIONAL` or
  :data:`WRITER_KEY` (its ``openapi_extra``); the description gets the matching sentence, the
  document a ``bearer`` security scheme, and the operation the refusals of a wrong key;
* **the refusals the middlewares give** before a route runs (see :mod:`service.limits` and
  :class:`service.auth.OriginCheckMiddleware`): 400 (a malformed ``Content-Length``), 403 (a
  request sent by another site's page), 413 (a body over the limit), 429 (rate limits, with
  ``Retry-After``), 404 (a path that names no route, such as an id holding ``/``);
* **the bodies of refusals**: ``{"detail"}`` under ``/api`` (a 422 also lists ``errors`` per
  field), ``application/problem+json`` under ``/v1`` (as Annif answers; its validation errors
  are 400 problems, never 422).

The API speaks English to developers; the examples are French communiqués, as served.
"""

from __future__ import annotations

import copy
from typing import Any

from service.limits import WRITE_METHODS, route_class

KEY_SCHEME = "key"
"""The security scheme's name: a key sent as ``Authorization: Bearer <key>``."""

NO_KEY: dict[str, Any] = {"security": []}
"""``openapi_extra`` of an operation that reads no key: anyone may call it, and every caller
gets the same answer."""
KEY_OPTIONAL: dict[str, Any] = {"security": [{}, {KEY_SCHEME: []}]}
"""``openapi_extra`` of an operation open to anyone whose answer includes drafts for readers
and writers."""
WRITER_KEY: dict[str, Any] = {"security": [{KEY_SCHEME: []}]}
"""``openapi_extra`` of an operation for writers only (editors)."""

SECURITY_SCHEMES = {KEY_SCHEME: {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "A key set by the operator, sent as `Authorization: Bearer <key>`. The readers' key "
        "(`COMMUNIQUES_READ_KEY`, for archivists) shows drafts (`published: false`); the "
        "writers' key (`COMMUNIQUES_API_KEY`, for editors) also writes documents and records "
        "what the tag model learns. In a browser, signing in on `/connexion` gives a session "
        "cookie that counts as the key (so that a key never travels in a URL); this page sends "
        "it with its requests. A wrong key is refused (401), never silently ignored."
    ),
}}

ACCESS = {
    "none": "**Who may call:** anyone; no key is needed, and none is read.",
    "optional": (
        "**Who may call:** anyone. Drafts (`published: false`: communiqués not announced yet) "
        "are only returned to, or counted for, readers and writers (their key or a signed-in "
        "session); for anyone else they do not exist. A wrong key is refused (401)."
    ),
    "writer": (
        "**Who may call:** writers only: the writers' key (`COMMUNIQUES_API_KEY`) or a "
        "writer's signed-in session. No key or a wrong one: 401; the readers' key, or a "
        "service with no writers' key configured (writes disabled): 403."
    ),
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "A refusal under `/api`: what was refused and why, in English.",
    "properties": {"detail": {
        "type": "string",
        "description": "What was refused and why; names the parameter or field at fault.",
        "examples": ["no document with id 'lancement-de-france-transfert'"],
    }},
    "required": ["detail"],
    "examples": [{"detail": "no document with id 'lancement-de-france-transfert'"}],
}
FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "description": "One invalid parameter or body field.",
    "properties": {
        "field": {"type": "string", "description": "The parameter or field, dotted for a "
                  "nested one (`size`, `accepted.0`).", "examples": ["size"]},
        "message": {"type": "string", "description": "What is wrong with it.",
                    "examples": ["Input should be less than or equal to 100"]},
    },
    "examples": [{"field": "size", "message": "Input should be less than or equal to 100"}],
}
VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "description": "A 422 under `/api`: the request's parameters or body are invalid.",
    "properties": {
        "detail": {"type": "string", "description": "Every error on one line, `field: message` "
                   "joined with `; `.",
                   "examples": ["size: Input should be less than or equal to 100"]},
        "errors": {"type": "array", "description": "One entry per invalid parameter or field "
                   "(absent when the whole request was refused at once, such as a document "
                   "that does not parse).",
                   "items": {"$ref": "#/components/schemas/ValidationError"}},
    },
    "required": ["detail"],
    "examples": [
        {"detail": "size: Input should be less than or equal to 100",
         "errors": [{"field": "size", "message": "Input should be less than or equal to 100"}]},
        {"detail": "field 'title' is missing"},
    ],
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "A refusal under `/v1`, as `application/problem+json` (RFC 9457), as "
                   "Annif gives it.",
    "properties": {
        "type": {"type": "string", "description": "Always `about:blank`: the status says it all.",
                 "examples": ["about:blank"]},
        "title": {"type": "string", "description": "The status's name.",
                  "examples": ["Not Found"]},
        "status": {"type": "integer", "description": "The HTTP status, repeated.",
                   "examples": [404]},
        "detail": {"type": "string", "description": "What was refused and why, in English.",
                   "examples": ["Project 'annif-fr' not found"]},
    },
    "required": ["title", "detail"],
    "examples": [{"type": "about:blank", "title": "Not Found", "status": 404,
                  "detail": "Project 'annif-fr' not found"}],
}
SCHEMAS = {"Error": ERROR_SCHEMA, "ValidationError": FIELD_ERROR_SCHEMA,
           "HTTPValidationError": VALIDATION_ERROR_SCHEMA, "Problem": PROBLEM_SCHEMA}

JSON_ERROR = {"schema": {"$ref": "#/components/schemas/Error"}}
JSON_VALIDATION_ERROR = {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before sending again.",
                               "schema": {"type": "integer", "examples": [2]}}}

MIDDLEWARE_REFUSALS = {
    "400": "A malformed request: an invalid `Content-Length` header.",
    "403": "Sent from another site's page: its `Origin` is neither this service's own nor one "
           "listed in `COMMUNIQUES_SITE_ORIGIN`.",
    "404": "No route for this path (an id holding `/`, for one).",
    "413": "The request body is over the limit (`COMMUNIQUES_MAX_BODY_BYTES`, 1,000,000 "
           "bytes by default).",
    "429": "Too many requests from this client for this kind of route (the limits are set by "
           "`COMMUNIQUES_RATE_*`); send again after `Retry-After` seconds.",
}
KEY_REFUSALS = {
    "401": "Missing or wrong key: a key that is not one of the service's is refused, never "
           "ignored (`WWW-Authenticate: Bearer`).",
    "403": "The readers' key (it may read, not write), or writes are disabled (no writers' key "
           "configured).",
}


def refusal(description: str, detail: str | None = None) -> dict[str, Any]:
    """A refusal under ``/api``, for a route's ``responses``: its description, and an example
    of the body when ``detail`` is given."""
    entry: dict[str, Any] = {"description": description}
    if detail is not None:
        entry["content"] = {"application/json": {"example": {"detail": detail}}}
    return entry


def _access(operation: dict[str, Any]) -> str:
    security = operation.setdefault("security", [])
    if not security:
        return "none"
    return "optional" if {} in security else "writer"


def _add(responses: dict[str, Any], code: str, description: str, merge: bool = False) -> None:
    """Document ``code``; when it is documented already, keep it (or, ``merge``, append this
    other reason to its description)."""
    entry = responses.get(code)
    if entry is None:
        responses[code] = {"description": description}
    elif merge and description not in entry.get("description", ""):
        entry["description"] = (
            f"{entry['description'].rstrip('.')}; or {description[0].lower()}{description[1:]}")


def _bodies(path: str, responses: dict[str, Any]) -> None:
    """The body of each refusal, as the service sends it under this path."""
    annif = path.startswith("/v1/")
    for code, entry in responses.items():
        if not code.startswith(("4", "5")):
            continue
        content = entry.setdefault("content", {})
        if annif:
            content.pop("application/json", None)  # FastAPI's default for a declared code
            content.setdefault("application/problem+json", {}).setdefault(
                "schema", PROBLEM["schema"])
            if code in MIDDLEWARE_REFUSALS:  # refused before the route: plain JSON
                content.setdefault("application/json", copy.deepcopy(JSON_ERROR))
            continue
        media = content.setdefault("application/json", {})
        schema = media.get("schema", {})
        if code == "422":
            media["schema"] = JSON_VALIDATION_ERROR["schema"]
        elif not schema or schema.get("$ref", "").endswith("/HTTPValidationError"):
            media["schema"] = JSON_ERROR["schema"]


def finish(openapi: dict[str, Any]) -> dict[str, Any]:
    """Who may call each operation, the refusals it may really get, and their bodies."""
    openapi = copy.deepcopy(openapi)  # the routes' own declarations stay as they are
    components = openapi.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(SCHEMAS))
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    for path, item in openapi.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            verb = method.upper()
            responses = operation["responses"]
            access = _access(operation)
            operation["description"] = (
                f"{operation.get('description', '').rstrip()}\n\n{ACCESS[access]}").lstrip()
            if access != "none":
                _add(responses, "401", KEY_REFUSALS["401"])
            if access == "writer":
                _add(responses, "403", KEY_REFUSALS["403"])
            _add(responses, "400", MIDDLEWARE_REFUSALS["400"])
            if "{" in path:
                _add(responses, "404", MIDDLEWARE_REFUSALS["404"])
            if verb in WRITE_METHODS:
                _add(responses, "403", MIDDLEWARE_REFUSALS["403"], merge=True)
                _add(responses, "413", MIDDLEWARE_REFUSALS["413"])
            if route_class(verb, path.replace("{", "").replace("}", "")) is not None:
                _add(responses, "429", MIDDLEWARE_REFUSALS["429"])
                responses["429"].setdefault("headers", copy.deepcopy(RETRY_AFTER))
            if path.startswith("/v1/"):
                responses.pop("422", None)  # validation errors are 400 problems there
            elif "422" in responses and responses["422"]["description"] == "Validation Error":
                responses["422"]["description"] = (
                    "A parameter is invalid; `detail` and `errors` name each one.")
            _bodies(path, responses)
    return openapi
