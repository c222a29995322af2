"""MLXCTL_MODEL_MAP: model names a client sends that are not registered → a local model.

Coding agents name their vendor's models (`claude-opus-4-8`, `gpt-5-codex`); the map
sends such names to a model this machine has. `claude-*=qwen3:4b,*=qwen3:4b`: shell-style
patterns (fnmatch, case-sensitive), tried in order, the first match wins. The router
consults it only after a name failed to resolve, so a registered name always means itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from mlxctl.errors import InvalidInput


@dataclass(frozen=True)
class ModelMap:
    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> ModelMap:
        rules = []
        for part in text.split(","):
            if not part.strip():
                continue
            pattern, sep, model = (p.strip() for p in part.partition("="))
            if not sep or not pattern or not model:
                raise InvalidInput(
                    f"MLXCTL_MODEL_MAP: {part.strip()!r} is not `pattern=model`",
                    hint="e.g. MLXCTL_MODEL_MAP='claude-*=qwen3:4b,*=qwen3:4b'",
                )
            rules.append((pattern, model))
        return cls(tuple(rules))

    def target(self, name: str) -> str | None:
        """The model `name` maps to, or None when no pattern matches."""
        return next((model for pattern, model in self.rules if fnmatchcase(name, pattern)), None)
