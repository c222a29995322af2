"""Pattern aliases: model names a client sends that are not registered → local models.

Coding agents name their vendor's models (`claude-opus-4-8`, `gpt-5-codex`); a pattern
alias sends such names to models this machine has. They come from config.yaml `aliases:`
keys with `*`, `?` or `[` in them, and from MLXCTL_MODEL_MAP, the environment's spelling
(`claude-*=qwen3:4b,*=qwen3:4b`, tried first): shell-style patterns (fnmatch,
case-sensitive), in order, the first match wins. The router consults them only after a
name failed to resolve, so a registered name always means itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from mlxctl.errors import InvalidInput


def is_pattern(name: str) -> bool:
    """An alias key that matches many names rather than naming one."""
    return any(c in name for c in "*?[")


@dataclass(frozen=True)
class ModelMap:
    rules: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (pattern, its models in order)

    @classmethod
    def of_aliases(cls, aliases: dict[str, list[str]]) -> ModelMap:
        """The pattern aliases of config.yaml's `aliases:`, in the file's order."""
        return cls(tuple((k, tuple(v)) for k, v in aliases.items() if is_pattern(k)))

    def __add__(self, other: ModelMap) -> ModelMap:
        return ModelMap(self.rules + other.rules)

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
            rules.append((pattern, (model,)))
        return cls(tuple(rules))

    def match(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        """The first (pattern, models) whose pattern `name` matches, or None."""
        return next(((p, models) for p, models in self.rules if fnmatchcase(name, p)), None)
