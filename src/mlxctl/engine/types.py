"""What the HTTP side and the generation thread hand each other.

The worker's HTTP side never calls MLX: it turns a request into a
`GenerationRequest` (token ids + `SamplingParams`), submits it to the engine,
and reads `TokenEvent`s then one `DoneEvent` back. All MLX work happens on the
engine's one generation thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    # Number of alternatives per token to report (0: none); the sampled token's
    # own logprob is reported whenever `logprobs` is True.
    logprobs: bool = False
    top_logprobs: int = 0


# A logits processor as mlx-lm defines it: (tokens so far, logits) -> logits.
# Structured output plugs in here; it is built per request on the HTTP side from
# pure data and runs on the generation thread.
LogitsProcessorFactory = Callable[[], Callable[[Any, Any], Any]]


@dataclass
class GenerationRequest:
    prompt_tokens: list[int]
    max_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    # Extra token-id sequences that end generation (the model's EOS ids are always added).
    stop_token_ids: list[list[int]] = field(default_factory=list)
    logits_processors: list[LogitsProcessorFactory] = field(default_factory=list)
    request_id: str = ""
    # Images and the text they sit in, for a vision engine (engine/vlm.py `VisionInput`);
    # it replaces `prompt_tokens` with the ids its processor makes of them.
    media: Any = None


@dataclass(frozen=True)
class TokenEvent:
    token: int
    text: str  # the newly decoded text (may be "" while a multi-byte char is pending)
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class DoneEvent:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    error: str | None = None
    # Seconds from submit to first token, and decode time, measured on the generation thread.
    time_to_first_token: float | None = None
    generation_seconds: float | None = None
