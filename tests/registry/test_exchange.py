from __future__ import annotations

import json

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.exchange import dumps, export_registry, parse_registry

FULL = ModelRecord(
    slug="jerry-xl",
    repo_id="mlx-community/Qwen3-235B-A22B-Instruct-2507-6bit",
    model_id="mlx-community/Qwen3-235B-A22B-Instruct-2507-6bit",
    cache_path="/hf/models--x/snapshots/abc",
    format="mlx",
    port=8100,
    chat_template="/path/to/chat_template.jinja",
    tool_call_parser="qwen3_moe",
    reasoning_parser="qwen3",
    model_type="qwen3_moe",
    parameters=235_000_000_000,
    size_bytes=190_000_000_000,
    quant_bits=6,
    quant_group_size=64,
    context_length=262144,
    kv_bytes_per_token=188416,
    revision="abc",
    source="hf-cache",
    extra={"note": "seed"},
)


def test_export_has_the_seed_shape() -> None:
    data = export_registry([FULL])
    assert data["version"] == 1
    entry = data["models"]["jerry-xl"]
    for key in (
        "repo_id",
        "model_id",
        "cache_path",
        "format",
        "port",
        "chat_template",
        "tool_call_parser",
        "reasoning_parser",
    ):
        assert key in entry
    assert entry["port"] == 8100


def test_round_trip_loses_nothing(registry: Registry) -> None:
    other = ModelRecord(slug="small", cache_path="/s")
    registry.add_many([FULL, other])
    text = dumps(registry.list())
    records = parse_registry(text)
    assert records == [FULL, other]


def test_seed_example_parses() -> None:
    seed = {
        "version": 1,
        "models": {
            "jerry-xl": {
                "repo_id": "mlx-community/Qwen3-235B-A22B-Instruct-2507-6bit",
                "model_id": "mlx-community/Qwen3-235B-A22B-Instruct-2507-6bit",
                "cache_path": "/Users/thestudio/models/hf/hub/models--x/snapshots/sha",
                "format": "mlx",
                "port": 8100,
                "chat_template": "/path/to/chat_template.jinja",
                "tool_call_parser": "qwen3_moe",
                "reasoning_parser": "qwen3",
            }
        },
    }
    (record,) = parse_registry(json.dumps(seed))
    assert record.slug == "jerry-xl" and record.port == 8100 and record.source == "manual"


BAD = [
    ('{"version": 1, "models": {', "1:27: not valid JSON"),
    ('{"version": 2, "models": {}}', "field 'version' is 2"),
    ('{"version": 1, "models": []}', "field 'models' must be an object"),
    ('{"version": 1,\n "models": {\n  "Bad Slug": {"cache_path": "/x"}}}', ":3: models.Bad Slug"),
    ('{"version": 1, "models": {"a": {"port": 8100}}}', "models.a.cache_path: required"),
    ('{"version": 1, "models": {"a": {"cache_path": "/x", "port": "8100"}}}', "models.a.port"),
    ('{"version": 1, "models": {"a": {"cache_path": "/x", "colour": 1}}}', "models.a.colour"),
    (
        '{"version": 1, "models": {\n"a": {"cache_path": "/x", "port": 8100},\n'
        '"b": {"cache_path": "/y", "port": 8100}}}',
        ":3: models.b.port: port 8100 is also given to 'a'",
    ),
    ('{"version": 1, "models": {"a": {"cache_path": "/x", "port": 99999}}}', "port 99999"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_files_name_line_and_field(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_registry(text, source="r.json")
    assert message in str(err.value)
    assert str(err.value).startswith("r.json:")
