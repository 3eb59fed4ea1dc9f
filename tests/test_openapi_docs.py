"""The OpenAPI description is documentation a developer can work from: every operation says what
it is for and who may call it, every parameter, request body and schema property is described
and has an example, every refusal is described with its body, and the examples are valid against
their own schemas. The HTML pages stay out of it (the JSON API and the Annif-compatible ``/v1``
are what it documents)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from service.app import create_app
from service.context import Settings

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
DOCUMENTED_PREFIXES = ("/api/", "/v1/", "/health", "/metrics")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(index_dir=folder / "index", model_path=folder / "model.pkl"))
    return app.openapi()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, *parts = node["$ref"].split("/")
        found: Any = spec
        for part in parts:
            found = found[part]
        node = found
    return node


def has_example(node: dict[str, Any]) -> bool:
    return bool(node.get("example") is not None or node.get("examples"))


def example_values(node: dict[str, Any]) -> list[Any]:
    """The examples a parameter, media type or schema gives (OpenAPI or JSON Schema style)."""
    values: list[Any] = []
    if "example" in node:
        values.append(node["example"])
    examples = node.get("examples")
    if isinstance(examples, list):
        values += examples
    elif isinstance(examples, dict):
        values += [e["value"] for e in examples.values() if "value" in e]
    return values


def schemas_of(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every component schema, and every request body's schema given inline."""
    yield from spec["components"]["schemas"].items()
    for label, operation in operations(spec):
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            schema = content.get("schema", {})
            if "$ref" not in schema:
                yield f"{label} ({media})", schema


def test_only_the_api_is_documented(spec: dict[str, Any]) -> None:
    paths = list(spec["paths"])
    assert "/api/search" in paths and "/v1/projects/{project_id}/suggest" in paths
    assert all(p.startswith(DOCUMENTED_PREFIXES) for p in paths), paths


def test_every_operation_has_a_summary_and_a_description(spec: dict[str, Any]) -> None:
    missing = [label for label, op in operations(spec)
               if not op.get("summary", "").strip() or not op.get("description", "").strip()]
    assert not missing, missing


def test_every_operation_says_who_may_call_it(spec: dict[str, Any]) -> None:
    schemes = spec["components"].get("securitySchemes", {})
    assert schemes, "no security scheme: the keys are not documented"
    for label, op in operations(spec):
        assert "security" in op, f"{label}: no security requirement (anonymous, or which key)"
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes), (label, requirement)
        assert "Who may call" in op["description"], label
        anonymous = not op["security"] or {} in op["security"]
        if not anonymous:  # a key is required: refusals without one, or with the wrong one
            assert {"401", "403"} <= set(op["responses"]), label
    writes = {label for label, op in operations(spec) if op["security"] and {} not in op["security"]}
    assert {"PUT /api/documents/{doc_id}", "DELETE /api/documents/{doc_id}",
            "POST /api/tags/feedback", "POST /v1/projects/{project_id}/learn"} == writes


def test_every_parameter_has_a_description_and_an_example(spec: dict[str, Any]) -> None:
    missing = []
    for label, op in operations(spec):
        for param in op.get("parameters", []):
            param = resolve(spec, param)
            name = f"{label} {param['in']}:{param['name']}"
            if not param.get("description", "").strip():
                missing.append(f"{name}: no description")
            if not (has_example(param) or has_example(param.get("schema", {}))):
                missing.append(f"{name}: no example")
    assert not missing, "\n".join(missing)


def test_every_request_body_has_an_example(spec: dict[str, Any]) -> None:
    missing = []
    for label, op in operations(spec):
        body = op.get("requestBody")
        if body is None:
            continue
        if not body.get("description", "").strip():
            missing.append(f"{label}: request body without a description")
        for media, content in body["content"].items():
            schema = resolve(spec, content.get("schema", {}))
            if not (has_example(content) or has_example(schema)):
                missing.append(f"{label} {media}: no example")
    assert not missing, "\n".join(missing)


def test_every_schema_property_is_described_and_every_schema_exemplified(
        spec: dict[str, Any]) -> None:
    missing = []
    for name, schema in schemas_of(spec):
        properties = schema.get("properties", {})
        for prop, node in properties.items():
            if not node.get("description", "").strip():
                missing.append(f"{name}.{prop}: no description")
        if not has_example(schema) and not all(has_example(p) for p in properties.values()):
            missing.append(f"{name}: no example, neither of the model nor of all its properties")
    assert not missing, "\n".join(missing)


def test_every_refusal_is_described_with_its_body(spec: dict[str, Any]) -> None:
    missing = []
    for label, op in operations(spec):
        for code, response in op["responses"].items():
            if not response.get("description", "").strip():
                missing.append(f"{label} {code}: no description")
            if code.startswith(("4", "5")) and not response.get("content"):
                missing.append(f"{label} {code}: no body schema")
    assert not missing, "\n".join(missing)


def test_refusals_are_those_the_service_gives(spec: dict[str, Any]) -> None:
    """No status the service never answers (409: a locked index is a 503 with Retry-After;
    422 on ``/v1``, whose validation errors are 400 problems as Annif's), and the ones it does."""
    for label, op in operations(spec):
        codes = set(op["responses"])
        assert "409" not in codes, label
        if " /v1/" in label:
            assert "422" not in codes, label
            for code, response in op["responses"].items():
                if code.startswith("4") or code.startswith("5"):
                    assert "application/problem+json" in response["content"], (label, code)
    put = spec["paths"]["/api/documents/{doc_id}"]["put"]["responses"]
    assert {"401", "403", "413", "422", "429", "503"} <= set(put)
    assert "Retry-After" in put["503"].get("headers", {})
    assert {"404", "503"} <= set(spec["paths"]["/api/documents/{doc_id}/tags/suggest"]["get"]
                                 ["responses"])


def test_examples_are_valid_against_their_schemas(spec: dict[str, Any]) -> None:
    """An example a developer copies is one the service accepts (or gives)."""
    checked = 0
    errors: list[str] = []

    def check(where: str, schema: dict[str, Any], values: list[Any]) -> None:
        nonlocal checked
        validator = jsonschema_rs.validator_for({**schema, "components": spec["components"]})
        for value in values:
            checked += 1
            errors.extend(f"{where}: {e.message}" for e in validator.iter_errors(value))

    for name, schema in schemas_of(spec):
        check(name, schema, example_values(schema))
        for prop, node in schema.get("properties", {}).items():
            check(f"{name}.{prop}", node, example_values(node))
    for label, op in operations(spec):
        for param in op.get("parameters", []):
            param = resolve(spec, param)
            schema = param.get("schema", {})
            check(f"{label} {param['name']}", schema,
                  example_values(param) + example_values(schema))
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            check(f"{label} {media}", content.get("schema", {}), example_values(content))
        for code, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                check(f"{label} {code} {media}", content.get("schema", {}),
                      example_values(content))
    assert checked > 100
    assert not errors, "\n".join(errors)


def test_examples_are_french_communiques(spec: dict[str, Any]) -> None:
    text = str(spec)
    assert "lancement-de-france-transfert" in text and "Cybersécurité" in text


def test_the_description_is_in_one_language(spec: dict[str, Any]) -> None:
    """The API speaks English to developers (its messages are English); French is for the
    examples (the communiqués themselves)."""
    assert spec["info"]["description"].startswith("Search")
    texts = [op["description"] for _, op in operations(spec)]
    texts += [p.get("description", "") for _, op in operations(spec)
              for p in op.get("parameters", [])]
    texts += [node.get("description", "") for _, schema in schemas_of(spec)
              for node in [schema, *schema.get("properties", {}).values()]]
    words = " ".join(texts).lower()
    for french in ("texte de la requête", "0: sans date", "recherche et suggestion",
                   "étiquettes pour les communiqués"):
        assert french not in words, french


def test_the_docs_page_reads_this_description(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(Settings(index_dir=tmp_path / "index", model_path=tmp_path / "model.pkl"))
    client = TestClient(app)  # no lifespan: nothing to search, only the description to serve
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json()["paths"].keys() == app.openapi()["paths"].keys()
    assert 'data-openapi="/openapi.json"' in client.get("/docs").text
