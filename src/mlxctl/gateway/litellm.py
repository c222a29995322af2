"""A LiteLLM proxy config for mlxctl: one model per slot alias, plus on-demand models.

Each alias points at its slot's fixed port, so swapping the model in a slot never
needs a LiteLLM reload (the seeds' rule: ports are stable, models move). On-demand
models point at the daemon's own `/v1`, which loads them on first request.

Over several hosts (`host_entries`), every host that serves a model is one deployment
of the shared `model_name` (LiteLLM balances and fails over between them), and each
also gets a `model@host` entry of its own; `ROUTER_SETTINGS` make a dead host cost
one retry, not a failed request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mlxctl.gateway.hosts import Host, Survey
from mlxctl.slots.table import SlotSpec

# Without MLXCTL_API_KEY workers need no key; LiteLLM's openai provider wants one anyway.
NO_KEY = "none"
# LiteLLM reads `os.environ/NAME` values from its own environment when it starts.
DAEMON_KEY_REF = "os.environ/MLXCTL_API_KEY"
# In every entry's model_info: `--sync` changes only the proxy's models that carry it.
MANAGED = "mlxctl_managed"
# In model_info: the host a deployment is on.
HOST = "mlxctl_host"
# LiteLLM tries the lowest `order` first: hosts with the model loaded before those that
# would have to load it (`--include-on-demand`).
LOADED_ORDER, ON_DEMAND_ORDER = 1, 2
# With simple-shuffle, weighted failover re-sends a failed request to another host: LiteLLM
# never cools a deployment down for a refused connection, and plain retries may pick it again.
ROUTER_SETTINGS: dict[str, Any] = {
    "routing_strategy": "simple-shuffle",
    "enable_weighted_failover": True,
    "num_retries": 2,
    "allowed_fails": 3,
    "cooldown_time": 10,
}


def reachable_host(host: str) -> str:
    """The address a client connects to for a server bound to `host` (not a wildcard)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def deployment(
    model_name: str, model_id: str, api_base: str, api_key: str, **info: Any
) -> dict[str, Any]:
    """One `model_list` entry: `model_name` as clients say it, served as `model_id` at
    `api_base` (an OpenAI-compatible `/v1`); `info` joins the mlxctl mark in model_info."""
    return {
        "model_name": model_name,
        "litellm_params": {"model": f"openai/{model_id}", "api_base": api_base, "api_key": api_key},
        "model_info": {MANAGED: True, **info},
    }


def slot_entry(slot: SlotSpec, host: str, *, keyed: bool = False) -> dict[str, Any]:
    """The `model_list` entry for one slot; the alias is what clients ask for. Slot
    workers require the daemon's key when it has one (`keyed`)."""
    key = DAEMON_KEY_REF if keyed else NO_KEY
    base = f"http://{host}:{slot.port}/v1"
    return deployment(slot.alias, slot.alias, base, key, mlxctl_slot=slot.port)


def on_demand_entry(model_id: str, daemon_url: str, *, keyed: bool) -> dict[str, Any]:
    """An entry for a registered model served on demand by the daemon at `daemon_url`."""
    key = DAEMON_KEY_REF if keyed else NO_KEY
    return deployment(model_id, model_id, f"{daemon_url.rstrip('/')}/v1", key)


def host_key(host: Host, *, local: bool) -> str:
    """What LiteLLM sends to `host`: this daemon's key by reference (as for the slots), a
    peer's key as written in config.yaml or `--peer-key`."""
    if local:
        return DAEMON_KEY_REF if host.key else NO_KEY
    return host.key or NO_KEY


def host_entries(
    surveys: Iterable[Survey],
    local: str | None,
    *,
    include_on_demand: bool = False,
    taken: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Each host's models as deployments of one shared name each, then one `model@host`
    entry per deployment. A host serves the models it has loaded, and with
    `include_on_demand` also its other registered ones (at a lower priority). A shared
    name equal to one in `taken` (a slot alias) is left to it."""
    reserved = set(taken)
    shared: list[dict[str, Any]] = []
    pinned: list[dict[str, Any]] = []
    for survey in surveys:
        host = survey.host
        base = f"{host.url}/v1"
        key = host_key(host, local=host.name == local)
        models = list(survey.loaded)
        if include_on_demand:
            models += [m for m in survey.registered if m not in survey.loaded]
        for model in models:
            order = LOADED_ORDER if model in survey.loaded else ON_DEMAND_ORDER
            if model not in reserved:
                entry = deployment(model, model, base, key, **{HOST: host.name})
                entry["litellm_params"]["order"] = order
                shared.append(entry)
            pinned.append(deployment(f"{model}@{host.name}", model, base, key, **{HOST: host.name}))
    return shared + pinned


def build_config(
    slots: Iterable[SlotSpec],
    host: str,
    on_demand: Iterable[str] = (),
    daemon_url: str | None = None,
    *,
    keyed: bool = False,
    hosts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole proxy config; a name already taken by a slot alias is not repeated.
    With `hosts` (from `host_entries`) it spans several daemons and carries the
    router settings that fail over between them."""
    entries = [slot_entry(slot, host, keyed=keyed) for slot in slots]
    taken = {e["model_name"] for e in entries}
    if daemon_url is not None:
        for model_id in on_demand:
            if model_id not in taken:
                entries.append(on_demand_entry(model_id, daemon_url, keyed=keyed))
                taken.add(model_id)
    if hosts is None:
        return {"model_list": entries}
    return {"model_list": entries + hosts, "router_settings": dict(ROUTER_SETTINGS)}


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
