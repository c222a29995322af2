"""The llama.cpp generation loop: continuous batching over sequence slots.

One llama.cpp context holds a KV cache shared by up to `max_batch` sequences
(unified: any sequence may use any cell). Each slot is one sequence id and keeps
the tokens its KV holds after its request ends, so a later prompt that shares a
prefix with any idle slot starts from there. Every step builds one `llama_batch`:
the next token of each decoding sequence, then prompt chunks of the prefilling
ones up to `n_batch` tokens, decoded together; each sequence that needs a token
samples it from its own logits row (`npsampler`, per-request seeds and processors).

When the KV cells run short, idle slots give theirs back first (least recently
used); if running sequences alone fill the context, the longest ends with
finish_reason "length", as it would at the end of a private context.
"""

from __future__ import annotations

import codecs
import logging
import queue
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlxctl.engine.npsampler import NumpySampler, Row
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.types import DoneEvent, FinishReason, TokenEvent

if TYPE_CHECKING:
    from mlxctl.engine.llamacpp import LlamaCppEngine, _Job

log = logging.getLogger(__name__)

Event = TokenEvent | DoneEvent


@dataclass(eq=False)
class _Run:
    """A job's decoding state while it holds a slot."""

    job: _Job
    sampler: NumpySampler
    stops: list[list[int]]
    pending: list[int]  # prompt tokens not evaluated yet
    history: list[int] = field(default_factory=list)  # prompt + sampled tokens
    next_token: int | None = None  # sampled, to be evaluated next step
    generated: int = 0
    first: float | None = None
    cached: int = 0
    decoder: Any = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )


@dataclass(eq=False)
class _Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # what this sequence's KV holds
    run: _Run | None = None
    used: float = 0.0  # when it last held a request (idle slots give up KV oldest first)


class SlotLoop:
    """The generation thread's state: context, batch, slots and waiting jobs."""

    def __init__(self, engine: LlamaCppEngine, llm: Any, ctx: Any, n_batch: int) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.engine = engine
        self.llm = llm
        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_ctx = engine.context_length
        self.n_batch = n_batch
        self.n_vocab = engine.vocab_size
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.stats = engine._stats
        self.slots = [_Slot(seq) for seq in range(engine.max_batch)]
        self.waiting: deque[_Job] = deque()
        self.stopping = False

    # --- the loop -----------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stopping:
                busy = any(s.run is not None for s in self.slots)
                self._take(block=not busy and not self.waiting)
                self._admit()
                if any(s.run is not None for s in self.slots):
                    try:
                        self._step()
                    except Exception as exc:
                        log.exception("generation step failed")
                        self._fail_all(f"{type(exc).__name__}: {exc}")
        finally:
            self._shutdown()

    def _take(self, *, block: bool) -> None:
        """Apply queued commands: submits join `waiting`, cancels end their job."""
        while True:
            try:
                kind, job = self.engine._commands.get(block=block)
            except queue.Empty:
                return
            block = False
            if kind == "stop":
                self.stopping = True
            elif kind == "submit" and job is not None:
                self.waiting.append(job)
            elif kind == "cancel" and job is not None:
                self._cancel(job)

    def _admit(self) -> None:
        while self.waiting:
            job = self.waiting[0]
            if job.cancelled:
                self.waiting.popleft()
                self._retire(job, cancelled=True)
                continue
            slot = self._slot_for(job.request.prompt_tokens)
            if slot is None:
                return  # no free slot or no room yet: running sequences will make some
            self.waiting.popleft()
            self._start(slot, job)

    def _slot_for(self, prompt: list[int]) -> _Slot | None:
        """The idle slot sharing the longest prefix with `prompt`, its KV trimmed to fit.

        A running sequence that shares a longer prefix (the same system prompt, sent
        concurrently) lends it: its cells are shared into the slot, not recomputed.
        """
        idle = [s for s in self.slots if s.run is None]
        if not idle:
            return None
        best = max(idle, key=lambda s: (common_prefix(s.tokens, prompt), -s.used))
        keep = min(common_prefix(best.tokens, prompt), len(prompt) - 1)
        donor = max(self.slots, key=lambda s: common_prefix(s.tokens, prompt))
        lent = min(common_prefix(donor.tokens, prompt), len(prompt) - 1)
        if lent > keep:
            self._trim(best, 0)
            self.lib.llama_memory_seq_cp(self.memory, donor.seq, best.seq, 0, lent)
            best.tokens = list(prompt[:lent])
            keep = lent
        self._trim(best, keep)
        if not self._make_room(len(prompt) - keep, spare=best):
            return None
        return best

    def _start(self, slot: _Slot, job: _Job) -> None:
        request = job.request
        prompt = request.prompt_tokens
        cached = len(slot.tokens)
        from mlxctl.engine.llamacpp import row_processor

        slot.run = _Run(
            job=job,
            sampler=NumpySampler(
                request.sampling,
                len(prompt),
                [row_processor(make()) for make in request.logits_processors],
            ),
            stops=[list(s) for s in request.stop_token_ids if s],
            pending=list(prompt[cached:]),
            history=list(prompt),
            cached=cached,
        )
        slot.used = time.monotonic()
        self.stats.add_tokens(prompt=len(prompt), cached=cached)
        self.stats.set_active(self._active())

    # --- one step -----------------------------------------------------------------

    def _step(self) -> None:
        decoding = [s for s in self.slots if s.run is not None and s.run.next_token is not None]
        prefilling = [s for s in self.slots if s.run is not None and s.run.pending]
        wanted = len(decoding) + sum(len(s.run.pending) for s in prefilling if s.run is not None)
        self._make_room(wanted)
        if self._free_cells() < max(1, len(decoding)):
            self._end_longest()
            return
        batch, wants = self.batch, []
        batch.n_tokens = 0
        for slot in decoding:
            assert slot.run is not None and slot.run.next_token is not None
            wants.append((slot, self._add(slot, [slot.run.next_token], logits=True)))
            slot.run.next_token = None
        for slot in prefilling:
            assert slot.run is not None
            room = self.n_batch - batch.n_tokens
            room = min(room, self._free_cells())
            if room <= 0:
                break
            chunk = slot.run.pending[:room]
            slot.run.pending = slot.run.pending[len(chunk) :]
            last = self._add(slot, chunk, logits=not slot.run.pending)
            if not slot.run.pending:
                wants.append((slot, last))
        if batch.n_tokens == 0:
            self._end_longest()  # cannot happen unless the KV accounting is off
            return
        code = self.lib.llama_decode(self.ctx, batch)
        if code == 1:
            # No room for the batch in the KV (fragmented cells): free every idle slot, retry.
            for slot in self.slots:
                if slot.run is None:
                    self._trim(slot, 0)
            code = self.lib.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        for slot, index in wants:
            self._sample(slot, index)
        self._take(block=False)

    def _add(self, slot: _Slot, tokens: list[int], *, logits: bool) -> int:
        """Append `tokens` of `slot` to the batch; the batch index of the last one."""
        batch = self.batch
        for token in tokens:
            i = batch.n_tokens
            batch.token[i] = token
            batch.pos[i] = len(slot.tokens)
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = slot.seq
            batch.logits[i] = False
            slot.tokens.append(token)
            batch.n_tokens = i + 1
        batch.logits[batch.n_tokens - 1] = logits
        return int(batch.n_tokens - 1)

    def _sample(self, slot: _Slot, index: int) -> None:
        run = slot.run
        assert run is not None
        job = run.job
        if job.cancelled:
            return self._release(slot, cancelled=True)
        pointer = self.lib.llama_get_logits_ith(self.ctx, index)
        row: Row = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        token, logprobs = run.sampler(row, run.history)
        run.history.append(token)
        run.generated += 1
        run.first = run.first or time.perf_counter()
        eos = self.engine.eos_token_ids
        stopped = token in eos or any(run.history[-len(s) :] == s for s in run.stops)
        reason: FinishReason | None = "stop" if stopped else None
        if reason is None and run.generated >= job.max_tokens:
            reason = "length"
        # The stop token's own text is never decoded (Engine's contract).
        piece = b"" if stopped else self.llm.detokenize([token], special=True)
        text = run.decoder.decode(piece, final=reason is not None)
        self.stats.add_tokens(generated=1)
        top = job.request.sampling.top_logprobs
        self._send(job, _token_event(token, text, logprobs, top))
        if reason is not None:
            self._end(slot, reason)
        else:
            run.next_token = token

    # --- KV cells -----------------------------------------------------------------

    def _free_cells(self) -> int:
        return self.n_ctx - sum(len(s.tokens) for s in self.slots)

    def _make_room(self, cells: int, *, spare: _Slot | None = None) -> bool:
        """Free idle slots' KV (oldest first, `spare` last) until `cells` fit."""
        idle = sorted(
            (s for s in self.slots if s.run is None and s.tokens and s is not spare),
            key=lambda s: s.used,
        )
        for slot in idle:
            if self._free_cells() >= cells:
                break
            self._trim(slot, 0)
        return self._free_cells() >= cells

    def _trim(self, slot: _Slot, keep: int) -> None:
        if len(slot.tokens) > keep:
            self.lib.llama_memory_seq_rm(self.memory, slot.seq, keep, -1)
            del slot.tokens[keep:]

    def _end_longest(self) -> None:
        """The running sequences fill the context: the longest ends as at a context's end."""
        running = [s for s in self.slots if s.run is not None]
        slot = max(running, key=lambda s: len(s.tokens))
        assert slot.run is not None
        if slot.run.pending:
            self._end(slot, "error", error="no room in the context for this prompt")
        else:
            self._end(slot, "length")

    # --- endings ------------------------------------------------------------------

    def _cancel(self, job: _Job) -> None:
        for slot in self.slots:
            if slot.run is not None and slot.run.job is job:
                return self._release(slot, cancelled=True)
        if job in self.waiting:
            self.waiting.remove(job)
            self._retire(job, cancelled=True)

    def _end(self, slot: _Slot, reason: FinishReason, *, error: str | None = None) -> None:
        """Finish the slot's request: counters first, so its reader sees them after Done."""
        run = slot.run
        assert run is not None
        if reason == "error":
            self.stats.add_error()
        done = _done(run.job, reason, run, error=error)
        self._release(slot)
        self._send(run.job, done)

    def _release(self, slot: _Slot, *, cancelled: bool = False) -> None:
        """The slot's request is over; its KV stays for prefix reuse (minus unrun tokens)."""
        run = slot.run
        assert run is not None
        slot.run, slot.used = None, time.monotonic()
        self._retire(run.job, cancelled=cancelled)

    def _retire(self, job: _Job, *, cancelled: bool = False) -> None:
        if job.finished:
            return
        job.finished = True
        seconds = None if cancelled else time.perf_counter() - job.submitted
        self.stats.release(seconds=seconds, cancelled=cancelled)
        self.stats.set_active(self._active())

    def _active(self) -> int:
        return sum(s.run is not None for s in self.slots)

    def _send(self, job: _Job, event: Event) -> None:
        try:
            job.loop.call_soon_threadsafe(job.events.put_nowait, event)
        except RuntimeError:
            job.cancelled = True  # the caller's loop is gone: nobody will read

    def _fail_all(self, error: str) -> None:
        """A failed decode may leave the KV half-written: end every run, forget all KV."""
        for slot in self.slots:
            if slot.run is not None:
                self._end(slot, "error", error=error)
            self._trim(slot, 0)

    def _shutdown(self) -> None:
        with self.engine._gate:
            self.engine._running = False
        self._take(block=False)
        for slot in self.slots:
            if slot.run is not None:
                self._end(slot, "error", error="the engine was closed")
        for job in list(self.waiting):
            done = _done(job, "error", None, error="the engine was closed")
            self._retire(job)
            self._send(job, done)
        self.waiting.clear()
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.llm.close()


def _token_event(token: int, text: str, logprobs: Row | None, top: int) -> TokenEvent:
    if logprobs is None:
        return TokenEvent(token, text)
    best: tuple[tuple[int, float], ...] = ()
    if top:
        ids = np.argpartition(-logprobs, top - 1)[:top]
        ids = ids[np.argsort(-logprobs[ids])]
        best = tuple((int(i), float(logprobs[i])) for i in ids)
    return TokenEvent(token, text, float(logprobs[token]), best)


def _done(
    job: _Job, reason: FinishReason, run: _Run | None, *, error: str | None = None
) -> DoneEvent:
    now = time.perf_counter()
    first = run.first if run is not None else None
    return DoneEvent(
        finish_reason=reason,
        prompt_tokens=len(job.request.prompt_tokens),
        completion_tokens=run.generated if run is not None else 0,
        cached_tokens=run.cached if run is not None else 0,
        error=error,
        time_to_first_token=None if first is None else first - job.submitted,
        generation_seconds=None if first is None else now - first,
    )
