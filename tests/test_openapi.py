"""The OpenAPI document is generated from the resource types: valid for a published validator, every
operation's answers documented, and every documented request body is the type its handler decodes."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from tests.servers import RunningServer
from tracklane.resources.decoding import decode
from tracklane.web.api.contract import documented_body


@pytest.fixture(scope="module")
def app() -> FastAPI:
    from tracklane.bootstrap import create_app
    from tracklane.settings import Settings

    return create_app(Settings())


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items() for method, operation in item.items()]


def _api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every API route with its full path (routers included with a prefix keep their own paths)."""
    found: list[tuple[str, APIRoute]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append((prefix + route.path, route))
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes, prefix + route.include_context.prefix)

    walk(list(app.routes), "")
    return [(path, route) for path, route in found if path.startswith("/api/v1")]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any dangling $ref or malformed schema


def test_the_served_document_is_the_generated_one(api: httpx.Client, server: RunningServer) -> None:
    served = api.get("/api/openapi.json").json()
    validate(served)
    assert len(_operations(served)) >= 50
    assert api.get("/api/docs").status_code == 200


def test_every_operation_documents_its_success_answer_and_its_errors(document: dict[str, Any]) -> None:
    undocumented = []
    for method, path, operation in _operations(document):
        if not path.startswith("/api/v1"):
            continue
        responses = operation["responses"]
        successes = {status: answer for status, answer in responses.items() if status.startswith("2")}
        has_schema = any("schema" in a.get("content", {}).get("application/json", {}) for a in successes.values())
        if not (has_schema or "204" in successes):
            undocumented.append(f"{method.upper()} {path}")
        assert {"400", "500", "503"} <= responses.keys(), f"{method.upper()} {path}"
        if "{" in path:
            assert "404" in responses, f"{method.upper()} {path}"
    assert undocumented == []


def test_every_handler_decodes_the_documented_body_type_and_its_example(app: FastAPI) -> None:
    document = app.openapi()
    validator_of = {}
    checked = 0
    for path, route in _api_routes(app):
        decoders = [d.call for d in route.dependant.dependencies if hasattr(d.call, "resource_type")]
        declared = documented_body(route.openapi_extra)
        method = sorted(route.methods)[0]
        name = f"{method} {path}"
        if not decoders:
            assert declared is None, f"{name} documents a body it does not read"
            continue
        assert declared is not None, f"{name} reads a body it does not document"
        body_type, example = declared
        assert [d.resource_type for d in decoders] == [body_type], name  # type: ignore[attr-defined]
        assert example is not None, f"{name} has no example body"
        decode(msgspec.json.encode(example), body_type)  # raises InvalidParameter if the example is not valid
        schema = document["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]
        validator_of[name] = OAS31Validator({**schema["schema"], "components": document["components"]})
        validator_of[name].validate(example)
        checked += 1
    assert checked >= 20


def test_every_handler_checks_the_key_before_it_reads_the_body(app: FastAPI) -> None:
    """A caller without the right key is refused (401/403) whatever it sends: the key's dependency comes
    before the body's in every handler that has both."""
    from tracklane.web.api import auth

    checks = {auth.api_key, auth.admin, auth.caller, auth.reviewer, auth.partner_side}
    late = []
    for path, route in _api_routes(app):
        calls = [d.call for d in route.dependant.dependencies]
        keyed = [i for i, call in enumerate(calls) if call in checks]
        bodies = [i for i, call in enumerate(calls) if hasattr(call, "resource_type")]
        if bodies and (not keyed or keyed[0] > bodies[0]) and not path.endswith("-signups"):
            late.append(f"{sorted(route.methods)[0]} {path}")
    assert late == []


def test_no_pydantic_copy_of_a_resource_remains(document: dict[str, Any]) -> None:
    """Every schema component comes from a resource type: no FastAPI validation-error or pydantic leftovers."""
    names = set(document["components"]["schemas"])
    assert not names & {"HTTPValidationError", "ValidationError"}
    assert not any(name.endswith("In") for name in names), names
