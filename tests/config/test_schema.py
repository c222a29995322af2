"""A model's options, layered: settings, the section's preset, the section, a load preset.
Every field a section accepts is read into the options (none is silently ignored)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from mlxctl.config.file import parse_config
from mlxctl.config.schema import ModelSettings, Sampling
from mlxctl.config.source import ConfigError
from mlxctl.errors import InvalidInput
from mlxctl.model_options import ModelOptions, OptionsSource
from mlxctl.registry import ModelRecord

QWEN = ModelRecord(slug="qwen", cache_path="/q", repo_id="org/Qwen-Tiny")
OTHER = ModelRecord(slug="other", cache_path="/o")

# A value unlike every default, per field of a model section.
CHANGED: dict[str, Any] = {
    "context": 1234,
    "max_batch": 3,
    "max_queue": 5,
    "prompt_cache_entries": 7,
    "prompt_cache_bytes": "64MiB",
    "kv_context": 999,
    "kv_bits": 4,
    "kv_group_size": 32,
    "disk_cache_bytes": "1GiB",
    "draft_model": "tiny-draft",
    "num_draft_tokens": 4,
    "prompt_lookup": True,
    "chat_template": "/tmp/t.jinja",
    "tool_call_parser": "json_tools",
    "reasoning_parser": "think",
    "keep_alive": "1h",
    "pinned": True,
    "preload": True,
    "sampling": {name: 0.5 for name in ("temperature", "top_p", "min_p")},
}
# A sharded model refuses a draft model, prompt lookup, ... (sharding/limits.py): alone.
SHARD = {"hosts": ["127.0.0.1", "127.0.0.1"], "mode": "pipeline"}


def test_every_section_field_is_read_into_the_options() -> None:
    assert {*CHANGED, "shard"} == set(ModelSettings.model_fields), "cover every field here"
    config = parse_config(_yaml({"models": {"qwen": CHANGED}}))
    options = config.options_for(QWEN, ModelOptions())
    for name, value in CHANGED.items():
        read = getattr(options, name)
        assert (dict(read) if name == "sampling" else read) == value, name
    sharded = parse_config(_yaml({"models": {"qwen": {"shard": SHARD}}}))
    shard = sharded.options_for(QWEN, ModelOptions()).shard
    assert shard is not None and shard.model_dump(mode="json", exclude_defaults=True) == {
        "hosts": [{"host": "127.0.0.1"}, {"host": "127.0.0.1"}],
        "mode": "pipeline",
    }
    with pytest.raises(ConfigError, match=r"a sharded model cannot do: .*\(draft_model\)"):
        parse_config(_yaml({"models": {"qwen": {**CHANGED, "shard": SHARD}}}))
    untouched = config.options_for(OTHER, ModelOptions())
    assert untouched == ModelOptions()


def test_every_sampling_field_reaches_the_defaults() -> None:
    values = {name: 1 for name in Sampling.model_fields}
    config = parse_config(_yaml({"models": {"qwen": {"sampling": values}}}))
    assert dict(config.options_for(QWEN, ModelOptions()).sampling) == values


def test_layers_settings_then_preset_then_section_then_load_preset() -> None:
    config = parse_config(
        _yaml(
            {
                "presets": {
                    "fast": {"max_batch": 4, "context": 8192, "sampling": {"temperature": 0.2}},
                    "long": {"context": 32768, "max_batch": 1},
                },
                "models": {"org/Qwen-Tiny": {"preset": "fast", "context": 16384}},
            }
        )
    )
    defaults = ModelOptions(max_batch=8, max_queue=9)
    options = config.options_for(QWEN, defaults)
    assert (options.max_batch, options.context, options.max_queue) == (4, 16384, 9)
    assert options.preset == "fast" and dict(options.sampling) == {"temperature": 0.2}
    loaded = config.options_for(QWEN, defaults, "long")
    assert (loaded.context, loaded.max_batch, loaded.preset) == (32768, 1, "long")
    with pytest.raises(InvalidInput, match="no preset named 'nope'"):
        config.options_for(QWEN, defaults, "nope")


def test_load_time_fields_are_what_a_worker_is_started_with() -> None:
    load_time = set(ModelOptions().load_time())
    assert {"context", "max_batch", "kv_bits", "draft_model", "chat_template"} <= load_time
    assert not {"keep_alive", "pinned", "preload", "sampling"} & load_time
    assert {f.name for f in fields(ModelOptions)} >= set(CHANGED)


def test_the_source_follows_a_swapped_config() -> None:
    source = OptionsSource(ModelOptions())
    assert source.for_model(QWEN).context is None
    source.use(ModelOptions(), parse_config(_yaml({"models": {"qwen": {"context": 512}}})))
    assert source.for_model(QWEN).context == 512
    argv = source.for_model(QWEN).worker_argv()
    assert argv[argv.index("--context") + 1] == "512"


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data)


def test_example_template_path_is_just_a_string(tmp_path: Path) -> None:
    # A template file is checked by `mlxctl verify`, not by parsing (it may appear later).
    config = parse_config(_yaml({"models": {"qwen": {"chat_template": str(tmp_path / "x")}}}))
    assert config.options_for(QWEN, ModelOptions()).chat_template == str(tmp_path / "x")


def test_peers_are_named_base_urls() -> None:
    config = parse_config("peers:\n  studio: {url: 'http://127.0.0.1:9/', key: k}\n", "c.yaml")
    assert config.peers["studio"].url == "http://127.0.0.1:9"
    assert config.peers["studio"].key == "k"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("peers:\n  'a@b': {url: 'http://x:1'}\n", "peer name 'a@b'"),
        ("peers:\n  a: {url: 'ftp://x'}\n", "not an http(s) URL"),
        ("peers:\n  a: {url: 'http://x/v1'}\n", "without a path"),
        ("peers:\n  a: {url: 'http://x:1', token: k}\n", "token"),
    ],
)
def test_a_bad_peer_is_refused_with_its_line(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)) as e:
        parse_config(text, "c.yaml")
    assert "c.yaml:2" in str(e.value)
