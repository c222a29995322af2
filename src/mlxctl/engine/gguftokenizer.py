"""The tokenizer of a GGUF model, shaped like mlx-lm's `TokenizerWrapper`.

A GGUF folder that ships a Hugging Face `tokenizer.json` beside the file gets mlx-lm's
own loader (the same tokenizer the MLX engine would use). Otherwise `LlamaCppTokenizer`
adapts llama.cpp's tokenize/detokenize and the GGUF `tokenizer.chat_template` (rendered
with jinja2, sandboxed, as transformers does) to the HF methods the worker calls; it is
then wrapped in mlx-lm's `TokenizerWrapper`, which infers think markers and tool parsers.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlxctl.engine import mlxlm
from mlxctl.engine.mlxlm import TokenizerWrapper
from mlxctl.engine.templatebox import sandbox_environment

__all__ = ["LlamaCppTokenizer", "load_gguf_tokenizer"]


def load_gguf_tokenizer(model_dir: Path, llm: Any) -> TokenizerWrapper:
    """mlx-lm's loader when `tokenizer.json` sits beside the GGUF, else the llama.cpp adapter."""
    if (model_dir / "tokenizer.json").is_file():
        return mlxlm.load_tokenizer(model_dir)
    tokenizer = LlamaCppTokenizer(llm)
    parser_name = None
    if tokenizer.chat_template:
        try:
            parser_name = mlxlm.infer_tool_parser(tokenizer)
        except Exception:  # inference is a convenience; a model without it still serves
            parser_name = None
    kwargs: dict[str, Any] = {}
    if parser_name:
        module = mlxlm.tool_parser(parser_name)
        tokenizer.init_kwargs["tool_parser_type"] = parser_name
        kwargs = {
            "tool_parser": module.parse_tool_call,
            "tool_call_start": module.tool_call_start,
            "tool_call_end": module.tool_call_end,
        }
    return TokenizerWrapper(tokenizer, eos_token_ids=tokenizer.eos_token_ids, **kwargs)


class LlamaCppTokenizer:
    """HF-tokenizer-like view of a loaded `llama_cpp.Llama` (vocabulary calls are thread-safe)."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        meta: dict[str, str] = dict(getattr(llm, "metadata", {}) or {})
        self.chat_template: str | None = meta.get("tokenizer.chat_template")
        self.init_kwargs: dict[str, Any] = {}
        self._add_bos = meta.get("tokenizer.ggml.add_bos_token", "false").lower() == "true"
        self.bos_token_id: int | None = _valid(llm.token_bos())
        self.eos_token_id: int | None = _valid(llm.token_eos())
        self.bos_token = self._piece(self.bos_token_id)
        self.eos_token = self._piece(self.eos_token_id)
        ids = {i for i in (self.eos_token_id, _meta_int(meta, "tokenizer.ggml.eot_token_id")) if i}
        self.eos_token_ids: set[int] = {i for i in ids if i is not None}
        self._vocab: dict[str, int] | None = None

    def __len__(self) -> int:
        return int(self._llm.n_vocab())

    @property
    def vocab_size(self) -> int:
        return len(self)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        tokens = self._llm.tokenize(
            text.encode("utf-8"), add_bos=add_special_tokens and self._add_bos, special=True
        )
        return [int(t) for t in tokens]

    def decode(self, ids: Sequence[int] | int, skip_special_tokens: bool = False) -> str:
        tokens = [int(ids)] if isinstance(ids, int) else [int(t) for t in ids]
        raw: bytes = self._llm.detokenize(tokens, special=not skip_special_tokens)
        return raw.decode("utf-8", errors="replace")

    def get_vocab(self) -> dict[str, int]:
        """Token text → id, built once (special pieces included)."""
        if self._vocab is None:
            self._vocab = {}
            for i in range(len(self)):
                self._vocab.setdefault(self.decode([i]), i)
        return self._vocab

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.get_vocab().get(token)

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        chat_template: str | None = None,
        return_dict: bool = False,
        **kwargs: Any,
    ) -> Any:
        source = chat_template or self.chat_template
        if not source:
            raise ValueError("this model has no chat template")
        text = _compiled(source).render(
            messages=conversation,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
            **kwargs,
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def llguidance_tokenizer(self, eos_token_ids: list[int]) -> Any:
        """llguidance's view of llama.cpp's vocabulary, for structured output (~1 s)."""
        import llama_cpp
        from llguidance.llamacpp import lltokenizer_from_vocab

        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        with warnings.catch_warnings():
            # llguidance still calls llama.cpp's older per-token attribute function.
            warnings.simplefilter("ignore", DeprecationWarning)
            return lltokenizer_from_vocab(vocab, n_vocab=len(self), eos_token=eos_token_ids)

    def _piece(self, token: int | None) -> str | None:
        return None if token is None else self.decode([token])


def _valid(token: int) -> int | None:
    return int(token) if token is not None and int(token) >= 0 else None


def _meta_int(meta: dict[str, str], key: str) -> int | None:
    try:
        return _valid(int(meta[key]))
    except (KeyError, ValueError):
        return None


@functools.lru_cache(maxsize=8)
def _compiled(source: str) -> Any:
    """A template compiled once: compiling costs ~8 ms, rendering well under one."""
    return sandbox_environment().from_string(source)
