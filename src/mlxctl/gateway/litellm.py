"""A LiteLLM proxy config for mlxctl: one model per slot alias, plus on-demand models.

Each alias points at its slot's fixed port, so swapping the model in a slot never
needs a LiteLLM reload (the seeds' rule: ports are stable, models move). On-demand
models point at the daemon's own `/v1`, which loads them on first request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mlxctl.slots.table import SlotSpec

# Without MLXCTL_API_KEY workers need no key; LiteLLM's openai provider wants one anyway.
NO_KEY = "none"
# LiteLLM reads `os.environ/NAME` values from its own environment when it starts.
DAEMON_KEY_REF = "os.environ/MLXCTL_API_KEY"
# In every entry's model_info: `--sync` changes only the proxy's models that carry it.
MANAGED = "mlxctl_managed"


def reachable_host(host: str) -> str:
    """The address a client connects to for a server bound to `host` (not a wildcard)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def slot_entry(slot: SlotSpec, host: str, *, keyed: bool = False) -> dict[str, Any]:
    """The `model_list` entry for one slot; the alias is what clients ask for. Slot
    workers require the daemon's key when it has one (`keyed`)."""
    return {
        "model_name": slot.alias,
        "litellm_params": {
            "model": f"openai/{slot.alias}",
            "api_base": f"http://{host}:{slot.port}/v1",
            "api_key": DAEMON_KEY_REF if keyed else NO_KEY,
        },
        "model_info": {MANAGED: True, "mlxctl_slot": slot.port},
    }


def on_demand_entry(model_id: str, daemon_url: str, *, keyed: bool) -> dict[str, Any]:
    """An entry for a registered model served on demand by the daemon at `daemon_url`."""
    return {
        "model_name": model_id,
        "litellm_params": {
            "model": f"openai/{model_id}",
            "api_base": f"{daemon_url.rstrip('/')}/v1",
            "api_key": DAEMON_KEY_REF if keyed else NO_KEY,
        },
        "model_info": {MANAGED: True},
    }


def build_config(
    slots: Iterable[SlotSpec],
    host: str,
    on_demand: Iterable[str] = (),
    daemon_url: str | None = None,
    *,
    keyed: bool = False,
) -> dict[str, Any]:
    """The whole proxy config; a name already taken by a slot alias is not repeated."""
    entries = [slot_entry(slot, host, keyed=keyed) for slot in slots]
    taken = {e["model_name"] for e in entries}
    if daemon_url is not None:
        for model_id in on_demand:
            if model_id not in taken:
                entries.append(on_demand_entry(model_id, daemon_url, keyed=keyed))
                taken.add(model_id)
    return {"model_list": entries}


def to_yaml(config: dict[str, Any]) -> str:
    """YAML for the config's nested dicts/lists of scalars.

    Strings are written as JSON strings, which YAML reads as double-quoted scalars,
    so no YAML library is needed and no alias can be misread (`on`, `1e3`).
    """
    lines = ["# Written by `mlxctl gateway litellm`; regenerate rather than edit."]
    _emit(config, 0, lines)
    return "\n".join(lines) + "\n"


def _emit(value: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                _emit(item, indent + 1, lines)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                _emit(item, indent + 1, sub)
                first = sub[0][len(pad) + 2 :]
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))
