from __future__ import annotations

from pathlib import Path

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.settings import Settings, describe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [
        env for name, env, _, _ in describe() if f"`{env}`" not in text or f"`{name}`" not in text
    ]
    assert missing == [], f"add these settings to docs/settings.md: {missing}"


def test_env_overrides_and_defaults(tmp_path: Path) -> None:
    s = Settings.from_env({"MLXCTL_HOME": str(tmp_path), "MLXCTL_DEBUG": "1", "HOME": "/h"})
    assert s.home == tmp_path and s.debug is True
    assert s.registry_path == tmp_path / "registry.db"
    assert Settings.from_env({}).home == Path("~/.mlxctl").expanduser()


def test_hf_cache_precedence() -> None:
    assert Settings.from_env({"HF_HUB_CACHE": "/c"}).hf_cache == Path("/c")
    assert Settings.from_env({"HF_HOME": "/h"}).hf_cache == Path("/h/hub")
    assert Settings.from_env({"XDG_CACHE_HOME": "/x"}).hf_cache == Path("/x/huggingface/hub")


def test_bad_value_is_one_clear_error() -> None:
    with pytest.raises(InvalidInput, match="MLXCTL_DB_BUSY_TIMEOUT='soon'"):
        Settings.from_env({"MLXCTL_DB_BUSY_TIMEOUT": "soon"})
