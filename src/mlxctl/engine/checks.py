"""The checks a request passes on the caller's side, before it reaches an engine thread.

Pure Python on the model's figures (context length, vocabulary size): a bad request
fails here with a clear error and never costs the engine thread a step.
"""

from __future__ import annotations

from mlxctl.engine import sampling
from mlxctl.engine.types import GenerationRequest
from mlxctl.errors import InvalidInput

__all__ = ["ContextOverflow", "check_tokens", "checked_max_tokens"]


class ContextOverflow(InvalidInput, ValueError):
    """The prompt leaves no room in the model's context for a reply."""

    code, param = "context_length_exceeded", "messages"

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(
            f"This model's maximum context length is {context_length} tokens, but the "
            f"prompt has {prompt_tokens} tokens.",
            hint="Shorten the messages or the prompt.",
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


def checked_max_tokens(request: GenerationRequest, context_length: int, vocab_size: int) -> int:
    """Check `request` against the model (every engine); its max_tokens, clamped to fit.

    Raises ValueError for an empty prompt, unknown token ids or bad sampling values, and
    ContextOverflow when the prompt leaves no room for a reply.
    """
    prompt = request.prompt_tokens
    if not prompt:
        raise ValueError("The prompt has no tokens.")
    if len(prompt) >= context_length:
        raise ContextOverflow(len(prompt), context_length)
    if request.max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, not {request.max_tokens}")
    if min(prompt) < 0 or max(prompt) >= vocab_size:
        raise ValueError(f"Prompt token ids must be in [0, {vocab_size}).")
    sampling.validate(request.sampling, vocab_size)
    return min(request.max_tokens, context_length - len(prompt))


def check_tokens(token_lists: list[list[int]], *, context_length: int, vocab_size: int) -> None:
    """Embedding inputs: raise ValueError unless each has 1..context_length ids in [0, vocab)."""
    if not token_lists:
        raise ValueError("There are no inputs.")
    for tokens in token_lists:
        if not tokens:
            raise ValueError("An input has no tokens.")
        if len(tokens) > context_length:
            raise ValueError(f"An input is {len(tokens)} tokens; the model takes {context_length}.")
        if min(tokens) < 0 or max(tokens) >= vocab_size:
            raise ValueError(f"Token ids must be in [0, {vocab_size}).")
