"""The OpenAPI document: every route of the app in it, nothing else, valid OpenAPI 3.1."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from mlxctl.api.app import create_app
from mlxctl.api.envelope import dialect_of
from mlxctl.api.openapi import LEFT_OUT, dashboard, document
from mlxctl.openai_fields import CHAT, COMPLETION, IGNORED, SAMPLING
from mlxctl.operations import OPERATIONS
from mlxctl.settings import Settings

_ENVELOPE = {"openai": "OpenAIError", "ollama": "OllamaError", "anthropic": "AnthropicError"}


def app_operations(settings: Settings) -> set[tuple[str, str]]:
    """(path, method) of every route the daemon serves; `{model:path}` is `{model}`."""
    found = set()
    for route in create_app(settings).routes:
        assert isinstance(route, Route), f"{route!r}: only plain routes are described"
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        found |= {(path, method.lower()) for method in route.methods or ()}
    return found


def doc_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item}


def test_every_route_is_in_the_document_and_nothing_else(settings: Settings) -> None:
    served, described = app_operations(settings), doc_operations(document(settings))
    # Starlette answers HEAD wherever GET is served: a document lists it only where clients
    # rely on it (Ollama's `HEAD /`).
    missing = {(p, m) for p, m in served - described - LEFT_OUT if m != "head"}
    assert not missing, f"routes missing from api/openapi/: {sorted(missing)}"
    assert described <= served, f"described but not served: {sorted(described - served)}"
    assert served - described >= LEFT_OUT, "LEFT_OUT names a route that is gone or described"


def test_the_document_is_valid_openapi_3_1(settings: Settings) -> None:
    doc = document(replace(settings, api_key="secret"))
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_each_error_answer_is_in_the_envelope_of_its_path(settings: Settings) -> None:
    operations = {op.path for op in OPERATIONS}
    for path, item in document(settings)["paths"].items():
        # The registry and store operations add the next step (`hint`) to OpenAI's envelope.
        admin_errors = path in operations or path in dashboard.ADMIN_ERRORS
        name = "AdminError" if admin_errors else _ENVELOPE[dialect_of(path)]
        envelope = f"#/components/schemas/{name}"
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or path == "/health":
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": envelope}, (path, method, status)


def test_every_operation_but_health_and_the_page_answers_401_when_a_key_is_set(
    settings: Settings,
) -> None:
    assert "security" not in document(settings)  # no key: nothing to send
    doc = document(replace(settings, api_key="secret"))
    assert doc["security"] == [{"bearer": []}, {"apiKey": []}]
    for path, item in doc["paths"].items():
        for operation in item.values():
            if path == "/health" or path in dashboard.OPEN:
                assert operation["security"] == []
            else:
                assert "401" in operation["responses"] and "security" not in operation


def test_slots_are_named_by_this_daemons_ports_and_aliases(settings: Settings) -> None:
    custom = replace(settings, slot_base_port=9000, slot_aliases="big,small")
    slot = document(custom)["components"]["schemas"]["SlotRef"]
    assert slot["anyOf"] == [{"enum": [9000, 9001]}, {"enum": ["9000", "9001", "big", "small"]}]


def test_openai_requests_list_exactly_the_fields_the_worker_reads(settings: Settings) -> None:
    schemas = document(settings)["components"]["schemas"]
    for name, fields in (("ChatCompletionRequest", CHAT), ("CompletionRequest", COMPLETION)):
        described = set(schemas[name]["properties"])
        # keep_alive and preset are the daemon's own fields, taken out before the worker
        # sees the body.
        assert described == IGNORED | SAMPLING | fields | {"keep_alive", "preset"}, name
        assert schemas[name]["additionalProperties"] is False


def test_the_daemon_serves_it_behind_the_key(settings: Settings) -> None:
    keyed = replace(settings, api_key="secret")
    client = TestClient(
        create_app(keyed), base_url="http://127.0.0.1"
    )  # no lifespan: the route needs no scheduler
    assert client.get("/openapi.json").status_code == 401
    answer = client.get("/openapi.json", headers={"Authorization": "Bearer secret"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == document(keyed)
