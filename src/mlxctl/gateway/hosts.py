"""The daemons a multi-host LiteLLM config spans (`Host`) and what one serves (`Survey`).

Plain data, so the config writer (`litellm.py`, which the dashboard uses too) needs no
HTTP client; `survey.py` fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Host:
    """One mlxctl daemon: its name is the `host` in `model@host`."""

    name: str
    url: str
    key: str | None = None


@dataclass(frozen=True)
class Survey:
    """What one host serves right now: loaded models, and every registered name."""

    host: Host
    loaded: tuple[str, ...]
    registered: tuple[str, ...]
