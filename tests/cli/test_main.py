"""`mlxctl settings`: every setting with its value, secrets masked."""

from __future__ import annotations

import pytest

from tests.cli.runner import Run


def test_settings_masks_the_api_key(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLXCTL_API_KEY", "sup3r-s3cret-k3y")
    monkeypatch.setenv("MLXCTL_ORIGINS", "http://localhost:*")
    result = run("settings")
    assert result.code == 0
    assert "sup3r-s3cret-k3y" not in result.out
    assert "MLXCTL_API_KEY=******** (set; hidden)" in result.out
    assert "MLXCTL_ORIGINS=http://localhost:*" in result.out  # not a secret
    monkeypatch.delenv("MLXCTL_API_KEY")
    assert "MLXCTL_API_KEY=None" in run("settings").out
