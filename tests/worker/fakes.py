"""A scripted engine for the worker's unit tests, at the app ↔ engine seam.

It has the attributes and methods `mlxctl.worker.app.WorkerEngine` names and
replays what a test sets: a failure at submit (QueueFull, ContextOverflow, any
exception), or token texts followed by a `DoneEvent`. It runs no model: the
end-to-end tests use the real engine; this one makes the rare paths (a
mid-stream engine error, a crash, a slow load) deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxctl.engine.types import DoneEvent, GenerationRequest, TokenEvent


@dataclass
class Script:
    texts: list[str] = field(default_factory=lambda: ["Hello", ",", " world"])
    finish: str = "stop"
    error: str | None = None
    raise_on_submit: BaseException | None = None
    raise_after_texts: BaseException | None = None
    delay: float = 0.0


class ScriptedEngine:
    def __init__(self, tokenizer: Any, model_path: Path, *, context_length: int = 4096) -> None:
        self.tokenizer = tokenizer
        self.model_path = model_path
        self.context_length = context_length
        self.eos_token_ids: set[int] = set(tokenizer.eos_token_ids)
        self.script = Script()
        self.submitted: list[GenerationRequest] = []
        self.cancelled = 0
        self.closed = False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent | DoneEvent]:
        script = self.script
        if script.raise_on_submit is not None:
            raise script.raise_on_submit
        self.submitted.append(request)
        done = False
        try:
            for i, text in enumerate(script.texts):
                if script.delay:
                    await asyncio.sleep(script.delay)
                yield TokenEvent(token=100 + i, text=text, logprob=-0.5)
            if script.raise_after_texts is not None:
                raise script.raise_after_texts
            done = True
            yield DoneEvent(
                finish_reason=script.finish,
                prompt_tokens=len(request.prompt_tokens),
                completion_tokens=len(script.texts),
                error=script.error,
            )
        finally:
            if not done:
                self.cancelled += 1

    def stats(self) -> dict[str, Any]:
        return {"active": 0, "queue_depth": 0, "cancelled_total": self.cancelled}

    def close(self) -> None:
        self.closed = True
