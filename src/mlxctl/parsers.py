"""Parser names as users write them → the parser that handles them: one table for everyone.

A registry entry's `tool_call_parser` / `reasoning_parser` (seed 001, `registry set`,
`registry import`, a ModelSpec's `PARSER`) may use the names of mlx-lm, vLLM or
mlx-openai-server: `harmony`, `gpt_oss`, `openai`, `qwen3_moe`, `hermes`, `deepseek_r1`...
`NAMES` maps each to what mlxctl runs:

- a tool-call parser: `harmony` (gpt-oss, `worker/textstream.HarmonyStream`) or a
  module of mlx-lm's `tool_parsers` (`json_tools`, `qwen3_coder`, ...; any module the
  installed mlx-lm ships is accepted under its own name too);
- a reasoning parser: `harmony`, `think` (`<think>...</think>`) or `none`.

Unknown names are an `InvalidInput` naming the known ones, raised where the name is
written (registry, ModelSpec) and where it is checked (`mlxctl verify`), never first
in a worker that then fails to start. Names compare lower-case with `-` read as `_`.
No MLX import: the registry and the CLI use this too.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path

from mlxctl.errors import InvalidInput

HARMONY = "harmony"
THINK = "think"
NONE = "none"
REASONING = (HARMONY, THINK, NONE)

_JSON = "json_tools"  # <tool_call>{"name": ..., "arguments": ...}</tool_call> (Hermes style)

# name → (tool-call parser, reasoning parser); None: the name means nothing for that field.
NAMES: dict[str, tuple[str | None, str | None]] = {
    # gpt-oss: seed 001 and mlx-openai-server say harmony, vLLM says openai / openai_gptoss.
    "harmony": (HARMONY, HARMONY),
    "gpt_oss": (HARMONY, HARMONY),
    "openai": (HARMONY, HARMONY),
    "openai_gptoss": (None, HARMONY),
    # Hermes-style JSON tool calls, <think> reasoning: Qwen 2.5 / Qwen3 (vLLM, mlx-openai-server).
    "hermes": (_JSON, THINK),
    "qwen": (_JSON, None),
    "qwen2_5": (_JSON, None),
    "qwen3": (_JSON, THINK),
    "qwen3_moe": (_JSON, THINK),
    "qwen3_vl": (_JSON, THINK),
    "qwen3_5": (_JSON, THINK),
    "qwen3_coder": ("qwen3_coder", None),
    "qwen3_xml": ("qwen3_coder", None),
    # GLM 4.5+: vLLM's glm45 / glm4_moe parser is what mlx-lm's glm47 is modified from.
    "glm45": ("glm47", THINK),
    "glm4_moe": ("glm47", THINK),
    "glm47": ("glm47", THINK),
    "functiongemma": ("function_gemma", None),
    "llama4_pythonic": ("pythonic", None),
    "kimi_k2": ("kimi_k2", THINK),
    "minimax_m2": ("minimax_m2", THINK),
    "minimax_m2_append_think": (None, THINK),
    # Reasoning-only names (vLLM --reasoning-parser) that all mean <think>...</think>.
    "think": (None, THINK),
    "deepseek_r1": (None, THINK),
    "deepseek_v3": (None, THINK),
    "ernie45": (None, THINK),
    "nemotron3_nano": (None, THINK),
    "none": (None, NONE),
}


def normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


@functools.cache
def mlxlm_tool_parsers() -> tuple[str, ...]:
    """The tool-parser modules of the installed mlx-lm, found without importing it."""
    spec = importlib.util.find_spec("mlx_lm")
    roots = spec.submodule_search_locations if spec is not None else None
    found: set[str] = set()
    for root in roots or ():
        folder = Path(root) / "tool_parsers"
        found |= {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    return tuple(sorted(found))


def tool_parser(name: str) -> str:
    """The tool-call parser `name` stands for: `harmony` or an mlx-lm module name."""
    key = normalize(name)
    mapped = NAMES.get(key, (None, None))[0]
    if mapped is not None:
        return mapped
    if key in mlxlm_tool_parsers():
        return key
    raise InvalidInput(
        f"unknown tool call parser {name!r}",
        hint="known: " + ", ".join(known_tool_parsers()),
    )


def reasoning_parser(name: str) -> str:
    """The reasoning parser `name` stands for: `harmony`, `think` or `none`."""
    mapped = NAMES.get(normalize(name), (None, None))[1]
    if mapped is None:
        raise InvalidInput(
            f"unknown reasoning parser {name!r}",
            hint="known: " + ", ".join(known_reasoning_parsers()),
        )
    return mapped


def check(tool: str | None, reasoning: str | None, where: str = "") -> None:
    """Raise `InvalidInput` (prefixed with `where`) unless both names are known."""
    for field, value, resolve in (
        ("tool_call_parser", tool, tool_parser),
        ("reasoning_parser", reasoning, reasoning_parser),
    ):
        if not value:
            continue
        try:
            resolve(value)
        except InvalidInput as e:
            prefix = f"{where}: " if where else ""
            raise InvalidInput(f"{prefix}{field}: {e.message}", hint=e.hint) from None


def same_tool_parser(a: str | None, b: str | None) -> bool:
    """Whether two written names run the same tool-call parser (None: the model's own)."""
    return _canonical(tool_parser, a) == _canonical(tool_parser, b)


def same_reasoning_parser(a: str | None, b: str | None) -> bool:
    return _canonical(reasoning_parser, a) == _canonical(reasoning_parser, b)


def known_tool_parsers() -> list[str]:
    return sorted({k for k, (tool, _) in NAMES.items() if tool} | set(mlxlm_tool_parsers()))


def known_reasoning_parsers() -> list[str]:
    return sorted(k for k, (_, reasoning) in NAMES.items() if reasoning)


def _canonical(resolve: Callable[[str], str], name: str | None) -> str | None:
    if not name:
        return None
    try:
        return resolve(name)
    except InvalidInput:
        return normalize(name)  # unknown: compared as written
