"""Fields of request bodies (read with `httpguard.json_object`): `model`, `keep_alive`, …"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mlxctl.api.errors import APIError
from mlxctl.errors import InvalidInput
from mlxctl.scheduler import KeepAlive
from mlxctl.scheduler.keepalive import parse_keep_alive
from mlxctl.sharding.spec import ShardSettings


def model_field(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise APIError(400, "You must provide a model parameter.", param="model", code="missing")
    return model


def keep_alive_field(value: object, param: str = "keep_alive") -> KeepAlive:
    try:
        return parse_keep_alive(value, param=param)
    except InvalidInput as e:
        raise APIError(400, e.message, param=param, code="invalid_value") from None


def bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false field; absent or null: `default`. Anything else is a 400, not a guess."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise APIError(400, f"'{name}' must be true or false", param=name, code="invalid_value")
    return value


def name_field(body: dict[str, Any], *fields: str) -> str:
    """The first non-blank of `fields` (Ollama's `model`, or the older `name`), stripped.

    A field that is present but not a string is a 400, even when another one names a model.
    """
    for name in fields:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise APIError(400, f"'{name}' must be a string", param=name, code="invalid_value")
    for name in fields:
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise APIError(400, f"'{fields[0]}' is required", param=fields[0], code="missing")


def shard_field(value: object, param: str = "shard") -> ShardSettings:
    """A `shard` object (docs/config.md, `shard`), validated like the config file's."""
    try:
        return ShardSettings.model_validate(value)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in (param, *first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        raise APIError(400, f"{where}: {message}", param=param, code="invalid_value") from None
