"""What a sharded model cannot do, refused with a 400 naming it: never silently dropped.

A sharded model is served by `mlx_lm.server` on every rank, which
    - refuses draft models in distributed mode (speculative decoding);
    - has no prompt lookup, no JSON-schema decoding (it ignores `response_format`),
      no fill-in-the-middle `suffix`, and takes no chat-template file, tool-call or
      reasoning parser of ours, nor a context cap.
KV quantization (`kv_bits`) it does: it is passed on (`launch.server_argv`).
"""

from __future__ import annotations

import json
from typing import Any

from mlxctl.errors import InvalidInput
from mlxctl.model_options import ModelOptions

# Model options (config.yaml fields) the sharded path cannot honour.
UNSUPPORTED_OPTIONS = (
    ("draft_model", "speculative decoding (draft_model)"),
    ("prompt_lookup", "prompt lookup (prompt_lookup)"),
    ("chat_template", "a chat template file (chat_template)"),
    ("tool_call_parser", "a tool-call parser (tool_call_parser)"),
    ("reasoning_parser", "a reasoning parser (reasoning_parser)"),
    ("context", "a context cap (context)"),
)


class ShardedUnsupported(InvalidInput):
    code = "unsupported_when_sharded"


def check_options(slug: str, options: ModelOptions) -> None:
    """Refuse a sharded model whose options ask for what `mlx_lm.server` cannot do."""
    if options.shard is None:
        return
    asked = [what for name, what in UNSUPPORTED_OPTIONS if getattr(options, name)]
    if asked:
        raise ShardedUnsupported(
            f"model '{slug}' is sharded ({options.shard.describe()}), which cannot do: "
            f"{', '.join(asked)}",
            hint="remove them from its config.yaml section (or preset), or serve it unsharded",
        )


def check_request(slug: str, body: bytes) -> None:
    """Refuse a request to a sharded model that asks for what it would silently ignore."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return  # the server answers a malformed body itself
    if not isinstance(data, dict):
        return
    asked = []
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        asked.append(f"structured output (response_format {fmt.get('type')})")
    if data.get("suffix") not in (None, ""):
        asked.append("fill-in-the-middle (suffix)")
    if data.get("draft_model") is not None:
        asked.append("speculative decoding (draft_model)")
    if data.get("adapters") is not None:
        asked.append("adapters")
    if asked:
        error = ShardedUnsupported(
            f"model '{slug}' is sharded, which cannot do: {', '.join(asked)}",
            hint="send the request without it, or serve the model unsharded",
        )
        error.param = "response_format" if asked[0].startswith("structured") else None
        raise error
