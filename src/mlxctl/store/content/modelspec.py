"""ModelSpec: the Modelfile-like recipe `mlxctl create` builds a model from.

One instruction per line (case-insensitive), `#` starts a comment line:

    FROM <model>                     required: a store name, registered model or folder
    PARAMETER <name> <value>         sampling default (see PARAMETERS); `stop` repeats
    TEMPLATE <text>                  chat template (Jinja)
    SYSTEM <text>                    system prompt
    MESSAGE <role> <text>            few-shot message: system, user or assistant
    ADAPTER <folder>                 LoRA adapter (adapters.safetensors + adapter_config.json)
    PARSER tool|reasoning <name>     tool-call parser (mlx-lm's) / reasoning parser
    LICENSE <text>                   license text; may repeat
    QUANTIZE <bits> [<group size>]   re-quantize the weights with mlx-lm

A <text> is the rest of the line, a JSON string ("a\\nb"), or a block in
triple quotes that may span lines. `format_spec(parse_spec(text))` gives the
canonical text, and parsing that gives the same `ModelSpec` back. Errors name
the file and line: `ModelSpec:7: unknown instruction 'PARAMETR'`.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from mlxctl.errors import InvalidInput

INSTRUCTIONS = (
    "FROM",
    "PARAMETER",
    "TEMPLATE",
    "SYSTEM",
    "MESSAGE",
    "ADAPTER",
    "PARSER",
    "LICENSE",
    "QUANTIZE",
)
PARAMETERS: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "min_p": float,
    "max_tokens": int,
    "repetition_penalty": float,
    "repetition_context_size": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "seed": int,
    "stop": str,
}
PARSER_KINDS = ("tool", "reasoning")
ROLES = ("system", "user", "assistant")
QUANT_BITS = (2, 3, 4, 5, 6, 8)
QUANT_GROUPS = (32, 64, 128)
_ONCE = ("FROM", "TEMPLATE", "SYSTEM", "ADAPTER", "QUANTIZE")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TRIPLE = '"""'

Value = float | int | str


@dataclass(frozen=True)
class ModelSpec:
    base: str
    parameters: tuple[tuple[str, Value], ...] = ()
    template: str | None = None
    system: str | None = None
    messages: tuple[tuple[str, str], ...] = ()
    adapter: str | None = None
    tool_parser: str | None = None
    reasoning_parser: str | None = None
    licenses: tuple[str, ...] = ()
    quantize: int | None = None
    group_size: int | None = None

    def options(self) -> dict[str, Any]:
        """Parameters as request options: `stop` becomes a list."""
        options: dict[str, Any] = {}
        for name, value in self.parameters:
            if name == "stop":
                options.setdefault("stop", []).append(value)
            else:
                options[name] = value
        return options


class _Lines:
    def __init__(self, text: str, source: str) -> None:
        # Only \n ends a line: splitlines() would also split text on \u2028 and friends.
        self.lines = text.replace("\r\n", "\n").split("\n")
        self.source = source
        self.index = 0

    def error(self, message: str, line: int | None = None, hint: str | None = None) -> InvalidInput:
        return InvalidInput(f"{self.source}:{line or self.index}: {message}", hint=hint)

    def text_value(self, rest: str, what: str) -> str:
        """The <text> starting at `rest` on the current line; may consume more lines."""
        if rest.lstrip().startswith(_TRIPLE):
            start = self.index
            body = rest.lstrip()[len(_TRIPLE) :]
            chunks: list[str] = []
            while _TRIPLE not in body:
                chunks.append(body)
                if self.index >= len(self.lines):
                    raise self.error(f'{what}: """ is never closed', line=start)
                body = self.lines[self.index]
                self.index += 1
            content, _, after = body.partition(_TRIPLE)
            if after.strip():
                raise self.error(f'unexpected text after closing """: {after.strip()!r}')
            return "\n".join([*chunks, content])
        rest = rest.strip()
        if rest.startswith('"'):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                raise self.error(
                    f"{what}: the quoted text is not a valid JSON string",
                    hint='use """ ... """ for text with quotes or several lines',
                ) from None
            if not isinstance(value, str):
                raise self.error(f"{what}: expected a quoted string")
            return value
        if not rest:
            raise self.error(f"{what} needs a value")
        return rest


def parse_spec(text: str, source: str = "ModelSpec") -> ModelSpec:
    """Parse a spec; every error names `source` and the line at fault."""
    lines = _Lines(text, source)
    values: dict[str, Any] = {"parameters": [], "messages": [], "licenses": []}
    seen: dict[str, int] = {}
    while lines.index < len(lines.lines):
        raw = lines.lines[lines.index]
        lines.index += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # `rest` keeps trailing spaces: they belong to a triple-quoted block's first line.
        word, rest = _split(raw.lstrip())
        instruction = word.upper()
        if instruction not in INSTRUCTIONS:
            close = difflib.get_close_matches(instruction, INSTRUCTIONS, n=1)
            raise lines.error(
                f"unknown instruction {word!r}",
                hint=f"did you mean {close[0]}?" if close else "see docs/modelspec.md",
            )
        key = _once_key(instruction, rest)
        if key in seen:
            raise lines.error(f"{key} given twice (first on line {seen[key]})")
        if key:
            seen[key] = lines.index
        _parse_instruction(lines, instruction, rest, values)
    if "FROM" not in seen:
        raise InvalidInput(
            f"{source}:1: no FROM instruction",
            hint="a spec names its base model first: FROM <model>",
        )
    return ModelSpec(
        base=values["base"],
        parameters=tuple(values["parameters"]),
        template=values.get("template"),
        system=values.get("system"),
        messages=tuple(values["messages"]),
        adapter=values.get("adapter"),
        tool_parser=values.get("tool_parser"),
        reasoning_parser=values.get("reasoning_parser"),
        licenses=tuple(values["licenses"]),
        quantize=values.get("quantize"),
        group_size=values.get("group_size"),
    )


def _split(text: str) -> tuple[str, str]:
    """First word and the rest, split on any whitespace; the rest keeps its right end."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _once_key(instruction: str, rest: str) -> str:
    if instruction in _ONCE:
        return instruction
    first = _split(rest)[0].lower()
    if instruction == "PARSER":
        return f"PARSER {first}"
    if instruction == "PARAMETER" and first != "stop":
        return f"PARAMETER {first}"
    return ""


def _parse_instruction(lines: _Lines, instruction: str, rest: str, values: dict[str, Any]) -> None:
    if instruction == "FROM":
        base = rest.strip()
        if not base or len(base.split()) != 1:
            raise lines.error("FROM needs one model name or folder")
        values["base"] = base
    elif instruction == "PARAMETER":
        name, raw = _split(rest)
        name = name.lower()
        if name not in PARAMETERS:
            close = difflib.get_close_matches(name, PARAMETERS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(PARAMETERS)}"
            raise lines.error(f"unknown parameter {name!r}", hint=hint)
        kind = PARAMETERS[name]
        if kind is str:
            values["parameters"].append((name, lines.text_value(raw, f"PARAMETER {name}")))
            return
        try:
            values["parameters"].append((name, kind(raw.strip())))
        except ValueError:
            raise lines.error(
                f"PARAMETER {name}: {raw!r} is not a{'n' * (kind is int)} {kind.__name__}"
            ) from None
    elif instruction in ("TEMPLATE", "SYSTEM"):
        values[instruction.lower()] = lines.text_value(rest, instruction)
    elif instruction == "LICENSE":
        values["licenses"].append(lines.text_value(rest, instruction))
    elif instruction == "MESSAGE":
        role, content = _split(rest)
        if role.lower() not in ROLES:
            raise lines.error(f"MESSAGE role {role!r} is not one of {', '.join(ROLES)}")
        values["messages"].append((role.lower(), lines.text_value(content, "MESSAGE")))
    elif instruction == "ADAPTER":
        values["adapter"] = lines.text_value(rest, instruction)
    elif instruction == "PARSER":
        which, name = _split(rest)
        name = name.strip()
        if which.lower() not in PARSER_KINDS:
            raise lines.error(f"PARSER kind {which!r} is not one of {', '.join(PARSER_KINDS)}")
        if not _NAME.match(name):
            raise lines.error(f"PARSER {which.lower()} needs a parser name (letters, digits, _)")
        values[f"{which.lower()}_parser"] = name
    elif instruction == "QUANTIZE":
        _parse_quantize(lines, rest, values)


def _parse_quantize(lines: _Lines, rest: str, values: dict[str, Any]) -> None:
    parts = rest.split()
    try:
        bits = int(parts[0]) if parts else 0
        group = int(parts[1]) if len(parts) > 1 else None
    except ValueError:
        bits, group = 0, None
    if (
        bits not in QUANT_BITS
        or len(parts) > 2
        or (group is not None and group not in QUANT_GROUPS)
    ):
        raise lines.error(
            f"QUANTIZE {rest!r}: expected bits ({', '.join(map(str, QUANT_BITS))}) "
            f"and optionally a group size ({', '.join(map(str, QUANT_GROUPS))})"
        )
    values["quantize"], values["group_size"] = bits, group


def format_spec(spec: ModelSpec) -> str:
    """The canonical text of `spec`: parsing it gives `spec` back."""
    out = [f"FROM {spec.base}"]
    if spec.adapter is not None:
        out.append(f"ADAPTER {_text(spec.adapter)}")
    if spec.quantize is not None:
        group = f" {spec.group_size}" if spec.group_size is not None else ""
        out.append(f"QUANTIZE {spec.quantize}{group}")
    if spec.tool_parser:
        out.append(f"PARSER tool {spec.tool_parser}")
    if spec.reasoning_parser:
        out.append(f"PARSER reasoning {spec.reasoning_parser}")
    for name, value in spec.parameters:
        shown = _text(value) if isinstance(value, str) else repr(value)
        out.append(f"PARAMETER {name} {shown}")
    if spec.template is not None:
        out.append(f"TEMPLATE {_text(spec.template)}")
    if spec.system is not None:
        out.append(f"SYSTEM {_text(spec.system)}")
    for role, content in spec.messages:
        out.append(f"MESSAGE {role} {_text(content)}")
    for text in spec.licenses:
        out.append(f"LICENSE {_text(text)}")
    return "\n".join(out) + "\n"


def _text(value: str) -> str:
    """Bare when it reads back the same, triple quotes for blocks, else a JSON string."""
    one_line = "\n" not in value and "\r" not in value
    if one_line and value and value == value.strip() and not value.startswith('"'):
        return value
    if _TRIPLE not in value and not value.endswith('"') and "\r" not in value:
        return _TRIPLE + value + _TRIPLE
    return json.dumps(value, ensure_ascii=False)
