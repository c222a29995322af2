"""What listens on a port, and the slot table from the settings."""

from __future__ import annotations

import os
import socket

import psutil
import pytest

from mlxctl.errors import InvalidInput
from mlxctl.settings import Settings
from mlxctl.slots import probe
from mlxctl.slots.probe import mlx_kind
from mlxctl.slots.table import resolve_slot, slot_table

OURS = "mlxctl worker"


def test_mlx_kind() -> None:
    assert mlx_kind("/usr/bin/python -m mlxctl.cli.main worker m --port 1") == OURS
    assert mlx_kind("/opt/bin/mlxctl worker m") == OURS
    assert mlx_kind("python -m mlx_lm.server --model x") == "mlx_lm.server"
    assert mlx_kind("/venv/bin/mlx-openai-server launch") == "mlx-openai-server"
    assert mlx_kind("python -m http.server 8100") is None
    assert mlx_kind(None) is None


def test_probe_finds_this_users_listener_without_the_global_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # macOS answers net_connections() with AccessDenied unless root.
    def denied(kind: str = "inet") -> list[object]:
        raise psutil.AccessDenied()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        monkeypatch.setattr(psutil, "net_connections", denied)
        found = probe.listener(port)
        assert found is not None and found.pid == os.getpid()


def test_slot_table_from_settings() -> None:
    settings = Settings.from_env({"MLXCTL_SLOT_BASE_PORT": "9000", "MLXCTL_SLOT_ALIASES": "a, b"})
    assert [(s.port, s.alias) for s in slot_table(settings)] == [(9000, "a"), (9001, "b")]
    assert len(slot_table(Settings.from_env({}))) == 10
    with pytest.raises(InvalidInput, match="distinct"):
        slot_table(Settings.from_env({"MLXCTL_SLOT_ALIASES": "a,a"}))
    with pytest.raises(InvalidInput, match="not a slot"):
        resolve_slot("8110", slot_table(Settings.from_env({})))


@pytest.mark.parametrize("reference", ["\u00b2", "\u0668\u0661\u0660\u0660", "8100\u00b2"])
def test_other_scripts_digits_are_not_a_port(reference: str) -> None:
    # "²".isdigit() is true but int("²") raises: the slot routes answered 500.
    with pytest.raises(InvalidInput, match="not a slot"):
        resolve_slot(reference, slot_table(Settings.from_env({})))
