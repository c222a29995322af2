"""A GGUF engine on llama.cpp with the same face as `engine.generator.Engine`.

`LlamaCppEngine` is an `EngineHost` (engine/host.py: one generation thread fed by a
queue) whose backend is `engine/llamabatch.py`: up to `max_batch` requests decode
together in one llama.cpp context whose KV cache they share (continuous batching,
prefix reuse per sequence); others wait in the queue (bounded: `QueueFull` beyond it).
Sampling runs per request in numpy (`npsampler`) on the raw logits, so seeds,
penalties, logit bias and the worker's logits processors (structured output) behave
as with the MLX engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlxctl.engine.host import EngineHost
from mlxctl.engine.llamabatch import LlamaBatch
from mlxctl.engine.outbox import Outbox
from mlxctl.errors import NotFound, Unavailable
from mlxctl.store.local.ggufinfo import GGUF_MAX_CONTEXT

__all__ = ["LlamaCppEngine", "find_gguf"]

# Without a setting, the context is the model's, capped: llama.cpp allocates all of it.
DEFAULT_MAX_CONTEXT = GGUF_MAX_CONTEXT
# The context of the Llama object that only tokenizes (the backend decodes in its own).
_TOKENIZER_CTX = 64


def find_gguf(path: Path, gguf_file: str | None = None) -> Path:
    """The GGUF file to load: `path` itself, `path/gguf_file`, or the folder's first one."""
    from mlxctl.store.local.ggufinfo import pick_gguf

    path = Path(path)
    if path.is_file():
        return path
    if gguf_file:
        chosen = path / gguf_file
        if not chosen.is_file():
            raise NotFound(f"GGUF file {chosen} not found.")
        return chosen
    files = sorted(path.glob("*.gguf"))
    if not files:
        raise NotFound(f"No .gguf file in {path}.")
    return pick_gguf(files)


class LlamaCppEngine(EngineHost[LlamaBatch]):
    """Serves one GGUF model to up to `max_batch` sequences at once, through llama-cpp-python.

    `start()` loads on the generation thread and fills `tokenizer`, `context_length`,
    `eos_token_ids` and `vocab_size`; `close()` stops it. `generate` may be called
    from any event loop; closing its iterator cancels the request.
    """

    thread_name = "mlxctl-llamacpp"

    def __init__(
        self,
        model_path: Path | str,
        *,
        gguf_file: str | None = None,
        max_batch: int = 4,
        max_queue: int = 64,
        context_length: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = -1,
        n_batch: int = 512,
    ) -> None:
        if max_batch < 1 or max_queue < 0 or n_batch < 1:
            raise ValueError("max_batch and n_batch must be >= 1, max_queue >= 0")
        super().__init__(model_path, max_batch=max_batch, max_queue=max_queue)
        self.gguf_file = gguf_file
        self.requested_context = context_length
        self.n_threads = n_threads or usable_cpus()
        self.n_gpu_layers = n_gpu_layers
        self.n_batch = n_batch

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "engine": "llama.cpp"}

    def _prepare(self) -> None:
        self.file = find_gguf(self.model_path, self.gguf_file)

    def _load(self, outbox: Outbox) -> LlamaBatch:
        import llama_cpp

        from mlxctl.engine.gguftokenizer import load_gguf_tokenizer

        n_ctx = self.requested_context or min(_trained_context(self.file), DEFAULT_MAX_CONTEXT)
        # This Llama only holds the weights and the vocabulary: the backend decodes in its
        # own context, sized for every sequence, so the Llama's is kept minimal.
        llm = llama_cpp.Llama(
            str(self.file),
            n_ctx=_TOKENIZER_CTX,
            n_batch=_TOKENIZER_CTX,
            n_threads=self.n_threads,
            n_gpu_layers=self.n_gpu_layers,
            verbose=False,
        )
        try:
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_batch = params.n_ubatch = min(self.n_batch, n_ctx)
            params.n_seq_max = self.max_batch
            params.kv_unified = True  # every sequence may use any KV cell
            params.n_threads = params.n_threads_batch = self.n_threads
            ctx = llama_cpp.llama_init_from_model(llm.model, params)
            if not ctx:
                raise Unavailable(f"llama.cpp could not create a context for {self.file.name}")
            self.tokenizer = load_gguf_tokenizer(
                self.model_path if self.model_path.is_dir() else self.file.parent, llm
            )
            self.context_length = int(llama_cpp.llama_n_ctx(ctx))
            self.vocab_size = int(llm.n_vocab())
        except BaseException:
            llm.close()
            raise
        eos = {int(t) for t in self.tokenizer.eos_token_ids}
        if int(llm.token_eos()) >= 0:
            eos.add(int(llm.token_eos()))
        self.eos_token_ids = eos
        return LlamaBatch(
            outbox,
            llm,
            ctx,
            n_batch=int(params.n_batch),
            max_batch=self.max_batch,
            eos_token_ids=eos,
        )


def usable_cpus() -> int:
    """The CPUs this process may run on: llama-cpp-python's default (half) idles half of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity call
        return os.cpu_count() or 1


def _trained_context(file: Path) -> int:
    """The context length the GGUF declares (header only); the default when absent."""
    from mlxctl.store.local.ggufinfo import read_gguf

    try:
        declared = read_gguf(file).context_length
    except Exception:  # llama.cpp will say what is wrong with the file when it loads it
        return DEFAULT_MAX_CONTEXT
    return declared or DEFAULT_MAX_CONTEXT
