"""Every mlxctl setting, declared once.

Each field of `Settings` carries its environment variable and help text in its
metadata; `Settings.from_env()` reads them, `describe()` lists them for
`--help` output and for the docs test that keeps `docs/settings.md` complete.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _setting(env: str, help: str, default: Any) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


def _default_hf_cache(environ: Mapping[str, str]) -> Path:
    # Same precedence as huggingface_hub, computed per call so tests can point it elsewhere.
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(
        "MLXCTL_HOME",
        "Folder holding the registry database, logs and the model store.",
        Path("~/.mlxctl"),
    )
    hf_cache: Path | None = _setting(
        "HF_HUB_CACHE",
        "Hugging Face hub cache scanned by `mlxctl init` (falls back to $HF_HOME/hub, "
        "then ~/.cache/huggingface/hub, as huggingface_hub does).",
        None,
    )
    debug: bool = _setting(
        "MLXCTL_DEBUG",
        "Print full tracebacks instead of one-line errors.",
        False,
    )
    db_busy_timeout: float = _setting(
        "MLXCTL_DB_BUSY_TIMEOUT",
        "Seconds a registry writer waits for another process's write to finish.",
        30.0,
    )
    blas: str = _setting(
        "MLXCTL_BLAS",
        "Linux only: BLAS library preloaded into worker processes under MLX's CPU backend "
        "('auto' finds OpenBLAS, 'off' keeps the wheel's reference BLAS, or a path).",
        "auto",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, f.type, raw, f.metadata["env"])
        settings = cls(**values)
        home = settings.home.expanduser()
        hf_cache = settings.hf_cache or _default_hf_cache(env)
        return cls(**{**values, "home": home, "hf_cache": Path(hf_cache).expanduser()})

    @property
    def hf_cache_dir(self) -> Path:
        assert self.hf_cache is not None  # from_env always fills it
        return self.hf_cache

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"


def _convert(name: str, type_name: object, raw: str, env: str) -> Any:
    kind = str(type_name).split(" |")[0]
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError:
        from mlxctl.errors import InvalidInput

        raise InvalidInput(f"{env}={raw!r} is not a valid {kind} (setting '{name}')") from None


def describe() -> list[tuple[str, str, str, str]]:
    """(name, env var, default, help) for every setting, in declaration order."""
    rows = []
    for f in fields(Settings):
        default = "" if f.default is None else str(f.default)
        rows.append((f.name, f.metadata["env"], default, f.metadata["help"]))
    return rows
