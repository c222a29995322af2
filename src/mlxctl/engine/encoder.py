"""The encoder engine: a BERT sentence encoder or cross-encoder on the host's thread.

    caller (asyncio)                          encoder thread (all MLX work)
    EncoderEngine.embed / rerank ── call ──▶ SimpleQueue ──▶ padded forward pass per chunk
         ▲                                                    │
         └── asyncio.Future ◀── loop.call_soon_threadsafe ────┘ vectors / logits

The worker's HTTP side tokenizes with `tokenizer` and hands token ids over, as for
the generation engine; a list of inputs is one padded forward pass (chunked at
`max_batch` rows). At most `max_queue` requests wait behind the one being encoded;
more get QueueFull (429). It generates nothing: `generate` raises InvalidInput.
`kind` says which it is (store/local/kind.py): "embedding" embeds, "rerank" scores
(query, document) pairs with the classifier's logit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlx.core as mx
from tokenizers import Tokenizer

from mlxctl.engine.bert import BertModel, CrossEncoder, load_bert, load_cross_encoder
from mlxctl.engine.host import EngineHost
from mlxctl.engine.outbox import Job, Outbox
from mlxctl.engine.pooling import pad
from mlxctl.engine.types import GenerationRequest
from mlxctl.errors import InvalidInput
from mlxctl.store.local.kind import model_kind

__all__ = ["EncoderEngine", "EncoderTokenizer", "Pair"]


class EncoderTokenizer:
    """A `tokenizers.Tokenizer` behind the two calls the worker makes (`encode`, `len`)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.token_to_id("[PAD]") or 0

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def encode_pair(self, first: str, second: str, limit: int) -> Pair | None:
        """`[CLS] first [SEP] second [SEP]` with token types, `second` cut to fit `limit`
        tokens (a cross-encoder's "only_second" truncation); None when `first` alone
        leaves no room for a token of `second`."""
        tok = self.tokenizer
        a = tok.encode(first, add_special_tokens=False)
        b = tok.encode(second, add_special_tokens=False)
        room = limit - len(a) - tok.num_special_tokens_to_add(is_pair=True)
        if room < 1:
            return None
        cut = len(b) > room
        if cut:
            b.truncate(room)
        pair = tok.post_process(a, b, add_special_tokens=True)
        return Pair(list(pair.ids), list(pair.type_ids), cut)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids))

    def __len__(self) -> int:
        return int(self.tokenizer.get_vocab_size())


@dataclass(frozen=True)
class Pair:
    """One (query, document) pair as a cross-encoder reads it."""

    ids: list[int]
    types: list[int]
    truncated: bool  # the document was cut to fit the context


class EncoderEngine(EngineHost["_Encoder"]):
    """Serves one sentence encoder or cross-encoder; `start()` loads it on its thread,
    `close()` stops it."""

    thread_name = "mlxctl-encoder"

    def __init__(self, model_path: Path | str, *, max_batch: int = 32, max_queue: int = 64) -> None:
        # `max_batch` is rows per forward pass; one request is encoded at a time and
        # `max_queue` more may wait (429 beyond).
        super().__init__(model_path, max_batch=max_batch, max_queue=max_queue, in_flight=1)
        self.tokenizer: EncoderTokenizer
        self.kind: Literal["embedding", "rerank"] = (
            "rerank" if model_kind(self.model_path) == "rerank" else "embedding"
        )

    def stats(self) -> dict[str, Any]:
        counts = self._stats.snapshot()
        return {
            "kind": self.kind,
            "requests_total": counts["embed_requests_total"],
            "inputs_total": counts["embed_inputs_total"],
            "tokens_total": counts["tokens_prompt_total"],
            "errors_total": counts["errors_total"],
        }

    async def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        """One L2-normalised vector per token list, in order; raises ValueError on bad ids."""
        if self.kind == "rerank":
            raise InvalidInput(f"'{self.model_path.name}' is a reranker: it serves /v1/rerank.")
        return await self._embed(token_lists)

    async def rerank(self, pairs: list[Pair]) -> list[float]:
        """The relevance logit of each pair, in order; raises ValueError on bad ids."""
        if self.kind != "rerank":
            raise InvalidInput(
                f"'{self.model_path.name}' is an embedding model: it serves /v1/embeddings."
            )
        ids = [pair.ids for pair in pairs]
        return await self._encode(ids, lambda backend: backend.score(pairs), "rerank")

    def _check(self, request: GenerationRequest) -> int:
        served = "/v1/rerank" if self.kind == "rerank" else "/v1/embeddings"
        raise InvalidInput(f"'{self.model_path.name}' is an {self.kind} model: it serves {served}.")

    def _load(self, outbox: Outbox) -> _Encoder:
        config = json.loads((self.model_path / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        self.context_length = int(config.get("max_position_embeddings") or 512)
        # Over-long inputs are the HTTP side's call (400, or `truncate`), never silent.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = EncoderTokenizer(tokenizer)
        self.vocab_size = int(config.get("vocab_size") or len(self.tokenizer))
        model = (load_cross_encoder if self.kind == "rerank" else load_bert)(self.model_path)
        return _Encoder(model, self.tokenizer.pad_token_id, self.max_batch)


class _Encoder:
    """The backend on the encoder thread: the model and its padded forward passes.

    It takes no generation jobs (`EncoderEngine._check` refuses them first), so
    `admit`, `step`, `cancel` and `reset` are never called with work to do.
    """

    def __init__(self, model: BertModel | CrossEncoder, pad_id: int, max_batch: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.max_batch = max_batch

    def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        assert isinstance(self.model, BertModel)
        vectors: list[list[float]] = []
        for start in range(0, len(token_lists), self.max_batch):
            ids, mask = pad(token_lists[start : start + self.max_batch], self.pad_id)
            pooled = self.model.embed(ids, mask)
            mx.eval(pooled)
            vectors.extend(pooled.tolist())  # type: ignore[arg-type]
        return vectors

    def score(self, pairs: list[Pair]) -> list[float]:
        assert isinstance(self.model, CrossEncoder)
        logits: list[float] = []
        for start in range(0, len(pairs), self.max_batch):
            chunk = pairs[start : start + self.max_batch]
            ids, mask = pad([pair.ids for pair in chunk], self.pad_id)
            types, _ = pad([pair.types for pair in chunk], 0)
            out = self.model(ids, mask, types)
            mx.eval(out)
            logits.extend(out.tolist())  # type: ignore[arg-type]
        return logits

    def admit(self, job: Job) -> bool:
        raise AssertionError("an encoder takes no generation jobs")

    def step(self) -> None:
        """Nothing runs."""

    def cancel(self, job: Job) -> None:
        """Nothing runs."""

    def reset(self) -> None:
        """Nothing runs."""

    def publish(self, *, force: bool) -> None:
        """No readings: the encoder keeps no cache."""

    def close(self) -> None:
        del self.model
        mx.clear_cache()
