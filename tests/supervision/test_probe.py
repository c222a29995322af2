"""What listens on a port, and whether it is an MLX server."""

from __future__ import annotations

import os
import socket

import psutil
import pytest

from mlxctl.supervision import probe
from mlxctl.supervision.probe import mlx_kind

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
