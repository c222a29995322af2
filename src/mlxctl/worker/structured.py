"""Structured output: `response_format` enforced during decoding with llguidance.

`JsonGrammars.factory(response_format)` compiles the JSON Schema (or "any JSON
object") once, on the HTTP side and off the event loop, and returns a
`LogitsProcessorFactory`: each call gives a fresh mlx-lm logits processor
`(tokens, logits) -> logits` that masks every token the grammar forbids. EOS
stays masked until the JSON is complete, and is the only token allowed once it
is. Output is laid out like `json.dumps` (no free whitespace), so a model cannot
spend its token budget on blanks. The processor runs on the engine's generation
thread; computing a mask is pure Rust (tens of µs per token).

`ForcedOutput` is the test-only hook behind `mlxctl_test_force`: it makes the
model emit a given text then EOS, through the real engine and sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import llguidance
import llguidance.hf
import mlx.core as mx
import numpy as np
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from mlxctl.engine.types import LogitsProcessorFactory
from mlxctl.worker.openai_errors import invalid_request

LogitsProcessor = Callable[[Any, Any], Any]
_JSON_LAYOUT: llguidance._lib.JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


class JsonGrammars:
    """Compiles `response_format`s for one tokenizer; thread-safe."""

    def __init__(self, tokenizer: Any, eos_token_ids: Iterable[int]) -> None:
        self._hf = getattr(tokenizer, "_tokenizer", tokenizer)
        self._eos = sorted(eos_token_ids)
        self._lock = threading.Lock()
        self._lltok: llguidance.LLTokenizer | None = None

    def tokenizer(self) -> llguidance.LLTokenizer:
        """llguidance's view of the vocabulary (built once: ~1 s for a 150k vocab)."""
        with self._lock:
            if self._lltok is None:
                # A GGUF without tokenizer.json brings llama.cpp's vocabulary instead.
                native = getattr(self._hf, "llguidance_tokenizer", None)
                self._lltok = (
                    native(self._eos)
                    if native is not None
                    else llguidance.hf.from_tokenizer(self._hf, eos_token=self._eos)
                )
            return self._lltok

    def factory(self, response_format: dict[str, Any]) -> LogitsProcessorFactory:
        """A processor factory for a parsed `response_format`; a bad schema is a 400.

        Blocking (grammar compilation): call it from a worker thread.
        """
        schema = response_format.get("schema", _ANY_OBJECT)
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=_JSON_LAYOUT)
        except ValueError as e:
            raise _bad_schema(str(e)) from e
        lltok = self.tokenizer()
        matcher = llguidance.LLMatcher(lltok, grammar, log_level=0)
        if matcher.is_error():
            raise _bad_schema(matcher.get_error())

        def make() -> LogitsProcessor:
            return _GrammarProcessor(matcher.deep_copy(), lltok.vocab_size, self._eos)

        return make


def _bad_schema(detail: str) -> Exception:
    return invalid_request(
        f"'response_format' schema cannot be enforced: {detail}",
        "response_format.json_schema.schema",
        code="invalid_schema",
    )


class _GrammarProcessor:
    """Masks logits to the grammar; called once per generated token, in order."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab: int, eos: list[int]) -> None:
        self._matcher = matcher
        self._vocab = vocab
        self._eos = eos
        self._bitmask = allocate_token_bitmask(1, vocab)
        self._started = False

    def __call__(self, tokens: Any, logits: Any) -> Any:
        # Each call after the first sees the token sampled after the previous call last.
        # Queue the context (its own evaluation, so its read waits for nothing behind it),
        # then the forward pass, and only then wait for that token: read first, the model
        # would idle from the token's sampling until this thread woke up and queued it.
        if self._started and isinstance(tokens, mx.array):
            mx.async_eval(tokens)  # type: ignore[no-untyped-call]
        # The forward pass runs while llguidance computes the mask on this thread.
        mx.async_eval(logits)  # type: ignore[no-untyped-call]
        if self._started:
            self._matcher.consume_token(_last_token(tokens))
        self._started = True
        if self._matcher.is_error():
            allowed = np.zeros(self._vocab, dtype=bool)
            allowed[self._eos] = True  # should not happen: end rather than emit junk
        else:
            fill_next_token_bitmask(self._matcher, self._bitmask)
            bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
            allowed = bits[: self._vocab].astype(bool)
        return _mask(logits, allowed)


class ForcedOutput:
    """TEST ONLY: a processor factory that allows exactly `token_ids`, then only EOS.

    Reached through the `mlxctl_test_force` request field, which the worker accepts
    only when started with MLXCTL_WORKER_TEST_HOOKS=1 (tests set it; nothing else
    should). The forced tokens still go through the engine, sampler and stream.
    """

    def __init__(self, token_ids: list[int], eos_token_id: int, vocab: int) -> None:
        self.token_ids = token_ids
        self.eos_token_id = eos_token_id
        self.vocab = vocab

    def __call__(self) -> LogitsProcessor:
        step = iter([*self.token_ids, self.eos_token_id])

        def force(tokens: Any, logits: Any) -> Any:
            token = next(step, self.eos_token_id)
            allowed = np.zeros(max(self.vocab, int(logits.shape[-1])), dtype=bool)
            allowed[token] = True
            return _mask(logits, allowed)

        return force


def _last_token(tokens: Any) -> int:
    """The newest token of mlx-lm's token context (1-D or (1, n) MLX or NumPy array, or a list).

    Read through NumPy's view of the evaluated buffer: indexing the MLX array would add
    an operation, queued behind the forward pass and so waiting for all of it."""
    if isinstance(tokens, list):
        return int(tokens[-1])
    return int(np.asarray(tokens).reshape(-1)[-1])


def _mask(logits: Any, allowed: np.ndarray[Any, np.dtype[np.bool_]]) -> Any:
    """Set forbidden logits to -inf; tokens past the tokenizer's vocab are forbidden."""
    width = int(logits.shape[-1])
    if allowed.shape[0] < width:
        allowed = np.concatenate([allowed, np.zeros(width - allowed.shape[0], dtype=bool)])
    return mx.where(mx.array(allowed[:width]), logits, float("-inf"))
