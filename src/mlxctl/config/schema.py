"""What `config.yaml` may hold, field by field (docs/config.md describes each one).

`ConfigFile` is the whole file: daemon `settings`, per-model sections under `models`
(keyed by a slug, repo id or model id), routing `aliases`, named `presets` and the
`peers` this daemon may forward to. Unknown
fields are refused, so a typo is an error with its line, never silently ignored.
`options_for` layers a model's options: the daemon's settings, its section's preset,
its section, then a preset named at load.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlxctl.errors import InvalidInput, MlxctlError
from mlxctl.model_options import ModelOptions
from mlxctl.registry import ModelRecord
from mlxctl.registry.resolve import resolve_exact
from mlxctl.scheduler.keepalive import parse_keep_alive
from mlxctl.sharding.limits import UNSUPPORTED_OPTIONS
from mlxctl.sharding.spec import ShardSettings
from mlxctl.units import parse_size

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Sampling(BaseModel):
    """Request defaults: a request's own value always wins."""

    model_config = _STRICT

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repetition_penalty: float | None = Field(None, gt=0, le=10)


class ModelSettings(BaseModel):
    """How one model runs: what a preset bundles and a model section sets."""

    model_config = _STRICT

    context: int | None = Field(None, ge=1)
    max_batch: int | None = Field(None, ge=1)
    max_queue: int | None = Field(None, ge=0)
    prompt_cache_entries: int | None = Field(None, ge=0)
    prompt_cache_bytes: str | None = None
    kv_context: int | None = Field(None, ge=1)
    kv_bits: Literal[4, 8] | None = None
    kv_group_size: Literal[32, 64, 128] | None = None
    disk_cache_bytes: str | None = None
    draft_model: str | None = Field(None, min_length=1)
    prompt_lookup: bool | None = None
    num_draft_tokens: int | None = Field(None, ge=1, le=64)
    chat_template: str | None = Field(None, min_length=1)
    tool_call_parser: str | None = Field(None, min_length=1)
    reasoning_parser: str | None = Field(None, min_length=1)
    keep_alive: str | None = None
    pinned: bool | None = None
    preload: bool | None = None
    sampling: Sampling | None = None
    shard: ShardSettings | None = None  # run across hosts (docs/scale-out.md)

    @model_validator(mode="after")
    def _shardable(self) -> ModelSettings:
        # Caught here when one section asks for both; across layers, at load (a 400).
        asked = [what for name, what in UNSUPPORTED_OPTIONS if getattr(self, name)]
        if self.shard is not None and asked:
            raise ValueError(f"a sharded model cannot do: {', '.join(asked)}")
        return self

    @field_validator("prompt_cache_bytes", "disk_cache_bytes")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_size(value)
            except MlxctlError as e:
                raise ValueError(e.message) from None
        return value

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _keep_alive(cls, value: object) -> str | None:
        if value is None:
            return None
        try:
            parse_keep_alive(value)
        except MlxctlError as e:
            raise ValueError(e.message) from None
        return str(value)


class ModelSection(ModelSettings):
    preset: str | None = Field(None, min_length=1)


_PEER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class PeerSection(BaseModel):
    """Another mlxctl daemon this one may forward to; its name is the `host` in `model@host`."""

    model_config = _STRICT

    url: str = Field(min_length=1)
    key: str | None = Field(None, min_length=1)  # the peer's MLXCTL_KEY, sent as a bearer token

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{value}' is not an http(s) URL with a host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"'{value}': give the daemon's base URL, without a path")
        return value.rstrip("/")


class ConfigFile(BaseModel):
    model_config = _STRICT

    settings: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, ModelSection] = Field(default_factory=dict)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    presets: dict[str, ModelSettings] = Field(default_factory=dict)
    peers: dict[str, PeerSection] = Field(default_factory=dict)

    @field_validator("peers")
    @classmethod
    def _peers(cls, value: dict[str, PeerSection]) -> dict[str, PeerSection]:
        for name in value:
            if not _PEER_NAME.fullmatch(name):
                raise ValueError(
                    f"peer name '{name}': letters, digits, '.', '_' or '-' (it is the host in "
                    "model@host)"
                )
        return value

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in value.items():
            if not name.strip() or not members or any(not m.strip() for m in members):
                raise ValueError(f"alias '{name}' needs a non-empty list of model names")
        return value

    @model_validator(mode="after")
    def _presets_exist(self) -> ConfigFile:
        for key, section in self.models.items():
            if section.preset is not None and section.preset not in self.presets:
                known = ", ".join(sorted(self.presets)) or "none defined"
                raise ValueError(
                    f"models.{key}.preset: no preset named '{section.preset}' ({known})"
                )
        return self

    def section_for(self, record: ModelRecord) -> ModelSection | None:
        """`record`'s section: the first key naming it exactly (slug, repo id, model id)."""
        for key, section in self.models.items():
            try:
                resolve_exact(key, [record])
            except Exception:
                continue
            return section
        return None

    def preset(self, name: str) -> ModelSettings:
        if name not in self.presets:
            known = ", ".join(sorted(self.presets)) or "none"
            raise InvalidInput(f"no preset named '{name}'", hint=f"presets in config.yaml: {known}")
        return self.presets[name]

    def options_for(
        self, record: ModelRecord, defaults: ModelOptions, load_preset: str | None = None
    ) -> ModelOptions:
        """`defaults`, then the section's preset, the section, then `load_preset`."""
        section = self.section_for(record)
        layers: list[ModelSettings] = []
        if section is not None and section.preset is not None:
            layers.append(self.presets[section.preset])
        if section is not None:
            layers.append(section)
        if load_preset is not None:
            layers.append(self.preset(load_preset))
        values: dict[str, Any] = {}
        sampling = dict(defaults.sampling)
        for layer in layers:
            values.update(
                layer.model_dump(exclude_none=True, exclude={"preset", "sampling", "shard"})
            )
            if layer.shard is not None:
                values["shard"] = layer.shard
            if layer.sampling is not None:
                sampling.update(layer.sampling.model_dump(exclude_none=True))
        preset = load_preset or (section.preset if section is not None else None)
        return replace(defaults, **values, sampling=tuple(sorted(sampling.items())), preset=preset)
