"""Server-sent events exactly as OpenAI frames them.

Each event is `data: {json}\\n\\n`; a successful stream ends with
`data: [DONE]\\n\\n`. Once the first byte is out the HTTP status is spent, so
an error becomes one final `data: {"error": {...}}` event (the same envelope as
`openai_errors.error_body`) and the stream ends without `[DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from mlxctl.worker.openai_errors import APIError, to_api_error

DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


def event(data: dict[str, Any]) -> bytes:
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def error_event(error: APIError) -> bytes:
    return event(error.body())


async def frame(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Frame chunk dicts as SSE, then `[DONE]`; an exception becomes the final error event.

    Closing this iterator (a client disconnect) closes `chunks`, whose own
    cleanup cancels the generation.
    """
    try:
        async for chunk in chunks:
            yield event(chunk)
    except Exception as e:
        yield error_event(to_api_error(e))
        return
    finally:
        await _aclose(chunks)
    yield DONE


async def _aclose(chunks: AsyncIterator[dict[str, Any]]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        # A disconnect cancels this task; closing must still reach the engine.
        with anyio.CancelScope(shield=True):
            await aclose()
