"""Finding the daemons a multi-host LiteLLM config spans, and asking each what it serves.

The hosts are this daemon (MLXCTL_HOST, named by `--name`), the `peers:` of
config.yaml and any `--peer NAME=URL`; each is asked over its own HTTP API
(`/api/admin/ps` for what is loaded, `/v1/models` for what is registered), so
this needs nothing from the daemon's own peer monitor.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from mlxctl.client import DaemonClient
from mlxctl.client.catalog import registered_models
from mlxctl.config.schema import ConfigFile, PeerSection
from mlxctl.errors import InvalidInput, MlxctlError, Unavailable
from mlxctl.gateway.hosts import Host, Survey

# A model in one of these states takes requests (a loading one queues them).
SERVING_STATES = ("loading", "ready")
# The survey must not stall a --watch round on one slow host.
SURVEY_TIMEOUT = 10.0


class HostDown(Unavailable):
    """A host that did not answer its survey (down, wrong URL or refused key)."""

    def __init__(self, host: Host, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.host = host


def default_name() -> str:
    """This machine's short hostname, as a peer name; `local` if it is not one."""
    name = socket.gethostname().split(".")[0]
    return name if re.fullmatch(r"[A-Za-z0-9._-]+", name) else "local"


def parse_pairs(values: Iterable[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` options as a dict; a value without `=` is one clear error."""
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise InvalidInput(
                f"{option} '{value}' is not NAME=VALUE", hint=f"e.g. {option} studio=…"
            )
        pairs[name.strip()] = rest.strip()
    return pairs


def gather_hosts(
    local: Host | None,
    config: ConfigFile | None,
    peers: Mapping[str, str],
    peer_keys: Mapping[str, str],
) -> list[Host]:
    """This host, then config.yaml's peers, then `--peer`s (a `--peer` overrides a
    config peer of the same name); each URL is checked as config.yaml checks one."""
    sections: dict[str, dict[str, str | None]] = {}
    for name, section in (config.peers if config else {}).items():
        sections[name] = {"url": section.url, "key": section.key}
    for name, url in peers.items():
        sections[name] = {"url": url, "key": sections.get(name, {}).get("key")}
    for name, key in peer_keys.items():
        if name not in sections:
            raise InvalidInput(
                f"--peer-key {name}=…: there is no peer named '{name}'",
                hint="add it with --peer NAME=URL or under peers: in config.yaml",
            )
        sections[name]["key"] = key
    try:
        checked = ConfigFile.model_validate({"peers": sections}).peers
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:2])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidInput(
            f"peer {where}: {message}" if where else message,
            hint="give each peer as --peer NAME=http://host:port",
        ) from None
    hosts = [local] if local else []
    hosts += [_host(name, section) for name, section in checked.items()]
    names = [host.name for host in hosts]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInput(
            f"two hosts are named '{twice[0]}'", hint="give this host another --name"
        )
    return hosts


def _host(name: str, section: PeerSection) -> Host:
    return Host(name, section.url, section.key)


def survey(host: Host) -> Survey:
    """Ask `host` what it serves; HostDown (naming the host) when it does not answer."""
    try:
        with DaemonClient(host.url, host.key, timeout=SURVEY_TIMEOUT) as client:
            rows = client.ps()
            models = registered_models(client)
    except MlxctlError as e:
        hint = "start its daemon, or fix its URL (MLXCTL_HOST, --peer or peers: in config.yaml)"
        if isinstance(e, InvalidInput):  # 401: the key, not the daemon
            hint = f"give its key with --peer-key {host.name}=KEY or peers.{host.name}.key"
        raise HostDown(host, f"host '{host.name}' ({host.url}): {e.message}", hint) from None
    loaded = tuple(dict.fromkeys(str(r["model"]) for r in rows if r.get("state") in SERVING_STATES))
    registered = tuple(dict.fromkeys(str(m["id"]) for m in models))
    return Survey(host, loaded, registered)
