"""Which tool-call and reasoning parsers a model may name.

A parser name comes from a ModelSpec, a pulled config blob, `registry set` or
an imported registry.json, and ends up as a module name the worker imports:
only mlx-lm's own tool parsers (`mlx_lm/tool_parsers/<name>.py`) and our
reasoning parsers pass. mlx-lm is looked up, not imported, so the daemon's
pull thread never loads MLX.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from mlxctl.errors import InvalidInput

REASONING_PARSERS = ("think", "harmony", "none")
_MODULE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def tool_parser_known(name: str) -> bool:
    if not _MODULE.match(name):
        return False
    spec = importlib.util.find_spec("mlx_lm")
    folders = spec.submodule_search_locations if spec is not None else None
    return any((Path(f) / "tool_parsers" / f"{name}.py").is_file() for f in folders or ())


def check_parsers(tool: str | None, reasoning: str | None, where: str) -> None:
    """Refuse a parser name mlx-lm or mlxctl does not ship; `where` starts the message."""
    if tool and not tool_parser_known(tool):
        raise InvalidInput(
            f"{where}: PARSER tool {tool!r} is not a parser mlx-lm knows",
            hint="use a module name from mlx_lm/tool_parsers, e.g. json_tools, qwen3_coder",
        )
    if reasoning and reasoning not in REASONING_PARSERS:
        raise InvalidInput(
            f"{where}: PARSER reasoning {reasoning!r} is not one of " + ", ".join(REASONING_PARSERS)
        )
