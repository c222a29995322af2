"""`registry.json`: the seeds' file shape, written and read losslessly.

    {"version": 1, "models": {"<slug>": {"repo_id": ..., "cache_path": ..., "port": ...}}}

Import validates the whole file before touching the database and names the line
and field at fault; then it applies everything in one transaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

from mlxctl.errors import InvalidInput, MlxctlError
from mlxctl.registry.record import ModelRecord

VERSION = 1
_FIELDS = {f.name: f for f in fields(ModelRecord)}
_INT_FIELDS = {
    "port",
    "parameters",
    "size_bytes",
    "quant_bits",
    "quant_group_size",
    "context_length",
    "kv_bytes_per_token",
}


def export_registry(records: list[ModelRecord]) -> dict[str, Any]:
    models = {}
    for record in sorted(records, key=lambda r: r.slug):
        entry = record.to_dict()
        del entry["slug"]
        models[record.slug] = entry
    return {"version": VERSION, "models": models}


def dumps(records: list[ModelRecord]) -> str:
    return format_registry(export_registry(records))


def format_registry(data: dict[str, Any]) -> str:
    """An exported registry as registry.json text."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def parse_registry(text: str, source: str = "registry.json") -> list[ModelRecord]:
    """Records from a registry.json text, or `InvalidInput` naming the line and field at fault."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{source}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}:1: top level must be an object with 'version' and 'models'")
    if data.get("version") != VERSION:
        line = _line_of(text, '"version"')
        raise InvalidInput(
            f"{source}:{line}: field 'version' is {data.get('version')!r}, expected {VERSION}"
        )
    models = data.get("models")
    if not isinstance(models, dict):
        line = _line_of(text, '"models"')
        raise InvalidInput(f"{source}:{line}: field 'models' must be an object")
    records: list[ModelRecord] = []
    ports: dict[int, str] = {}
    for slug, entry in models.items():
        line = _line_of(text, json.dumps(slug))
        where = f"{source}:{line}: models.{slug}"
        record = _record(slug, entry, where)
        if record.port is not None:
            if record.port in ports:
                raise InvalidInput(
                    f"{where}.port: port {record.port} is also given to '{ports[record.port]}' "
                    "(one port, one model)"
                )
            ports[record.port] = slug
        records.append(record)
    return records


def _record(slug: str, entry: object, where: str) -> ModelRecord:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where}: each model must be an object")
    unknown = sorted(set(entry) - set(_FIELDS) - {"slug"})
    if unknown:
        raise InvalidInput(f"{where}.{unknown[0]}: unknown field")
    if "slug" in entry and entry["slug"] != slug:
        raise InvalidInput(f"{where}.slug: {entry['slug']!r} differs from its key {slug!r}")
    values: dict[str, Any] = {k: v for k, v in entry.items() if k != "slug"}
    for name, value in values.items():
        _check_type(name, value, where)
    if "cache_path" not in values:
        raise InvalidInput(f"{where}.cache_path: required field is missing")
    try:
        return ModelRecord(slug=slug, **values).validate()
    except MlxctlError as e:
        raise InvalidInput(f"{where}: {e.message}") from None


def _check_type(name: str, value: object, where: str) -> None:
    if value is None:
        if name in ("cache_path", "format", "source", "extra"):
            raise InvalidInput(f"{where}.{name}: must not be null")
        return
    if name in _INT_FIELDS:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif name == "extra":
        ok, expected = isinstance(value, dict), "an object"
    else:
        ok, expected = isinstance(value, str), "a string"
    if not ok:
        raise InvalidInput(f"{where}.{name}: {value!r} is not {expected}")


def _line_of(text: str, needle: str) -> int:
    match = re.search(re.escape(needle), text)
    return text.count("\n", 0, match.start()) + 1 if match else 1
