"""What `mlxctl verify` checks: settings a model needs, and what its worker actually runs.

`needs(record)` lists settings a model cannot work without (a Harmony/gpt-oss model
needs a chat template and the `harmony` tool and reasoning parsers; a parser name no
parser answers to is a problem too). `audit_drift`
compares the registry with the last `worker.ready` audit line in the slot's log,
so a worker started before a registry change is caught.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxctl import parsers
from mlxctl.errors import InvalidInput
from mlxctl.registry import ModelRecord

HARMONY_TYPES = ("gpt_oss", "gpt-oss")


def needs(record: ModelRecord) -> list[str]:
    """Settings the model cannot work without, and parser names nobody can run."""
    problems: list[str] = []
    try:
        parsers.check(record.tool_call_parser, record.reasoning_parser)
    except InvalidInput as e:
        problems.append(f"{e.message} ({e.hint}); fix it with `mlxctl registry set {record.slug}`")
    if (record.model_type or "").lower() in HARMONY_TYPES:
        if not record.chat_template and not folder_has_template(Path(record.cache_path)):
            problems.append(
                "gpt-oss (Harmony) model without a chat template: set one with "
                f"`mlxctl registry set {record.slug} --chat-template FILE`"
            )
        for name, same in (
            ("tool_call_parser", parsers.same_tool_parser),
            ("reasoning_parser", parsers.same_reasoning_parser),
        ):
            value = getattr(record, name)
            if not same(value, parsers.HARMONY):
                problems.append(
                    f"gpt-oss (Harmony) model needs {name}=harmony (has {value or 'none'}): "
                    f"`mlxctl registry set {record.slug} --{name.replace('_', '-')} harmony`"
                )
    return problems


def folder_has_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def last_audit(log_path: Path, max_bytes: int = 1 << 20) -> dict[str, Any] | None:
    """The last `worker.ready` line of the log, or None (not started, not ready, rotated)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - max_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if '"worker.ready"' not in line:
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("event") == "worker.ready":
            return data
    return None


def audit_drift(record: ModelRecord, audit: dict[str, Any]) -> list[str]:
    """Where the running worker's audited settings differ from the registry."""
    problems: list[str] = []
    model = audit.get("model") if isinstance(audit.get("model"), dict) else {}
    assert isinstance(model, dict)
    if model.get("id") not in (None, record.slug):
        problems.append(f"worker runs model '{model.get('id')}', the registry says '{record.slug}'")
    if model.get("path") and Path(str(model["path"])) != Path(record.cache_path):
        problems.append(f"worker runs {model['path']}, the registry says {record.cache_path}")
    template = str(audit.get("chat_template") or "")
    if record.chat_template and template != f"registry:{record.chat_template}":
        problems.append(
            f"chat template: worker uses {template or 'none'}, "
            f"the registry says {record.chat_template}"
        )
    if not record.chat_template and template.startswith("registry:"):
        problems.append(f"chat template: worker uses {template}, the registry sets none")
    tool = audit.get("tool_call_parser")
    if record.tool_call_parser and not parsers.same_tool_parser(tool, record.tool_call_parser):
        problems.append(
            f"tool_call_parser: worker uses {tool}, the registry says {record.tool_call_parser}"
        )
    want = record.reasoning_parser
    reasoning = audit.get("reasoning_parser")
    if want and not parsers.same_reasoning_parser(reasoning, want):
        problems.append(f"reasoning_parser: worker uses {reasoning}, the registry says {want}")
    return problems
