"""The llama.cpp backend: continuous batching over the sequences of one context.

One llama.cpp context holds a KV cache shared by up to `max_batch` sequences
(unified: any sequence may use any cell). Each seat is one sequence id and keeps
the tokens its KV holds after its request ends, so a later prompt that shares a
prefix with any idle seat starts from there. Every step builds one `llama_batch`:
the next token of each decoding sequence, then prompt chunks of the prefilling
ones up to `n_batch` tokens, decoded together; each sequence that needs a token
samples it from its own logits row (`npsampler`, per-request seeds and processors).

When the KV cells run short, idle seats give theirs back first (least recently
used); if running sequences alone fill the context, the longest ends with
finish_reason "length", as it would at the end of a private context.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlxctl.engine.npsampler import NumpySampler, Row, row_processor
from mlxctl.engine.outbox import Job, Outbox
from mlxctl.engine.prefix import common_prefix
from mlxctl.engine.types import FinishReason, TokenEvent

__all__ = ["LlamaBatch"]


@dataclass(eq=False)
class _Run:
    """A job's decoding state while it holds a seat."""

    job: Job
    sampler: NumpySampler
    stops: list[list[int]]
    pending: list[int]  # prompt tokens not evaluated yet
    history: list[int] = field(default_factory=list)  # prompt + sampled tokens
    next_token: int | None = None  # sampled, to be evaluated next step
    decoder: Any = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )


@dataclass(eq=False)
class _Seat:
    """One sequence id of the context, and what its KV holds."""

    seq: int
    tokens: list[int] = field(default_factory=list)  # what this sequence's KV holds
    run: _Run | None = None
    used: float = 0.0  # when it last held a request (idle seats give up KV oldest first)


class LlamaBatch:
    """The backend on the llama.cpp thread: context, batch and seats.

    Takes ownership of `llm` (weights, vocabulary) and `ctx` (the context it decodes
    in, `n_seq_max` = `max_batch`); `close()` frees both.
    """

    def __init__(
        self,
        outbox: Outbox,
        llm: Any,
        ctx: Any,
        *,
        n_batch: int,
        max_batch: int,
        eos_token_ids: set[int],
    ) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.out = outbox
        self.stats = outbox.stats
        self.llm = llm
        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_batch = n_batch
        self.n_vocab = int(llm.n_vocab())
        self.eos_token_ids = eos_token_ids
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.seats = [_Seat(seq) for seq in range(max_batch)]

    # --- the host's calls -----------------------------------------------------------

    def admit(self, job: Job) -> bool:
        seat = self._seat_for(job.request.prompt_tokens)
        if seat is None:
            return False  # no room yet: running sequences will make some
        self._start(seat, job)
        return True

    def step(self) -> None:
        decoding = [s for s in self.seats if s.run is not None and s.run.next_token is not None]
        prefilling = [s for s in self.seats if s.run is not None and s.run.pending]
        wanted = len(decoding) + sum(len(s.run.pending) for s in prefilling if s.run is not None)
        self._make_room(wanted)
        if self._free_cells() < max(1, len(decoding)):
            self._end_longest()
            return
        batch, wants = self.batch, []
        batch.n_tokens = 0
        for seat in decoding:
            assert seat.run is not None and seat.run.next_token is not None
            wants.append((seat, self._add(seat, [seat.run.next_token], logits=True)))
            seat.run.next_token = None
        for seat in prefilling:
            assert seat.run is not None
            room = self.n_batch - batch.n_tokens
            room = min(room, self._free_cells())
            if room <= 0:
                break
            chunk = seat.run.pending[:room]
            seat.run.pending = seat.run.pending[len(chunk) :]
            last = self._add(seat, chunk, logits=not seat.run.pending)
            if not seat.run.pending:
                wants.append((seat, last))
        if batch.n_tokens == 0:
            self._end_longest()  # cannot happen unless the KV accounting is off
            return
        code = self.lib.llama_decode(self.ctx, batch)
        if code == 1:
            # No room for the batch in the KV (fragmented cells): free every idle seat, retry.
            for seat in self.seats:
                if seat.run is None:
                    self._trim(seat, 0)
            code = self.lib.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        for seat, index in wants:
            self._sample(seat, index)

    def cancel(self, job: Job) -> None:
        for seat in self.seats:
            if seat.run is not None and seat.run.job is job:
                self._vacate(seat)
                return

    def reset(self) -> None:
        """A failed decode may leave the KV half-written: forget every run and all KV."""
        for seat in self.seats:
            seat.run = None
            self._trim(seat, 0)

    def publish(self, *, force: bool) -> None:
        """Nothing to read: the context's memory is fixed when it is created."""

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.llm.close()

    # --- admission ----------------------------------------------------------------

    def _seat_for(self, prompt: list[int]) -> _Seat | None:
        """The idle seat sharing the longest prefix with `prompt`, its KV trimmed to fit.

        A running sequence that shares a longer prefix (the same system prompt, sent
        concurrently) lends it: its cells are shared into the seat, not recomputed.
        """
        idle = [s for s in self.seats if s.run is None]
        if not idle:
            return None
        best = max(idle, key=lambda s: (common_prefix(s.tokens, prompt), -s.used))
        keep = min(common_prefix(best.tokens, prompt), len(prompt) - 1)
        donor = max(self.seats, key=lambda s: common_prefix(s.tokens, prompt))
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

    def _start(self, seat: _Seat, job: Job) -> None:
        request = job.request
        prompt = request.prompt_tokens
        cached = len(seat.tokens)
        seat.run = _Run(
            job=job,
            sampler=NumpySampler(
                request.sampling,
                len(prompt),
                [row_processor(make()) for make in request.logits_processors],
            ),
            stops=[list(s) for s in request.stop_token_ids if s],
            pending=list(prompt[cached:]),
            history=list(prompt),
        )
        seat.used = time.monotonic()
        job.cached = cached

    # --- one step -----------------------------------------------------------------

    def _add(self, seat: _Seat, tokens: list[int], *, logits: bool) -> int:
        """Append `tokens` of `seat` to the batch; the batch index of the last one."""
        batch = self.batch
        for token in tokens:
            i = batch.n_tokens
            batch.token[i] = token
            batch.pos[i] = len(seat.tokens)
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seat.seq
            batch.logits[i] = False
            seat.tokens.append(token)
            batch.n_tokens = i + 1
        batch.logits[batch.n_tokens - 1] = logits
        return int(batch.n_tokens - 1)

    def _sample(self, seat: _Seat, index: int) -> None:
        run = seat.run
        assert run is not None
        job = run.job
        if job.cancelled:
            self._vacate(seat)
            self.out.retire(job, cancelled=True)
            return
        pointer = self.lib.llama_get_logits_ith(self.ctx, index)
        row: Row = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        token, logprobs = run.sampler(row, run.history)
        run.history.append(token)
        job.generated += 1
        job.first_token = job.first_token or time.perf_counter()
        stopped = token in self.eos_token_ids or any(run.history[-len(s) :] == s for s in run.stops)
        reason: FinishReason | None = "stop" if stopped else None
        if reason is None and job.generated >= job.max_tokens:
            reason = "length"
        # The stop token's own text is never decoded (Engine's contract).
        piece = b"" if stopped else self.llm.detokenize([token], special=True)
        text = run.decoder.decode(piece, final=reason is not None)
        self.stats.add_tokens(generated=1)
        top = job.request.sampling.top_logprobs
        self.out.send(job, _token_event(token, text, logprobs, top))
        if reason is not None:
            self._end(seat, reason)
        else:
            run.next_token = token

    # --- KV cells -----------------------------------------------------------------

    def _free_cells(self) -> int:
        return self.n_ctx - sum(len(s.tokens) for s in self.seats)

    def _make_room(self, cells: int, *, spare: _Seat | None = None) -> bool:
        """Free idle seats' KV (oldest first, `spare` last) until `cells` fit."""
        idle = sorted(
            (s for s in self.seats if s.run is None and s.tokens and s is not spare),
            key=lambda s: s.used,
        )
        for seat in idle:
            if self._free_cells() >= cells:
                break
            self._trim(seat, 0)
        return self._free_cells() >= cells

    def _trim(self, seat: _Seat, keep: int) -> None:
        if len(seat.tokens) > keep:
            self.lib.llama_memory_seq_rm(self.memory, seat.seq, keep, -1)
            del seat.tokens[keep:]

    def _end_longest(self) -> None:
        """The running sequences fill the context: the longest ends as at a context's end."""
        running = [s for s in self.seats if s.run is not None]
        seat = max(running, key=lambda s: len(s.tokens))
        assert seat.run is not None
        if seat.run.pending:
            self._end(seat, "error", error="no room in the context for this prompt")
        else:
            self._end(seat, "length")

    # --- endings ------------------------------------------------------------------

    def _end(self, seat: _Seat, reason: FinishReason, *, error: str | None = None) -> None:
        """Finish the seat's request with its DoneEvent."""
        self.out.finish(self._vacate(seat), reason, error=error)

    def _vacate(self, seat: _Seat) -> Job:
        """The seat's request is over; its KV stays for prefix reuse (minus unrun tokens)."""
        run = seat.run
        assert run is not None
        seat.run, seat.used = None, time.monotonic()
        return run.job


def _token_event(token: int, text: str, logprobs: Row | None, top: int) -> TokenEvent:
    if logprobs is None:
        return TokenEvent(token, text)
    best: tuple[tuple[int, float], ...] = ()
    if top:
        ids = np.argpartition(-logprobs, top - 1)[:top]
        ids = ids[np.argsort(-logprobs[ids])]
        best = tuple((int(i), float(logprobs[i])) for i in ids)
    return TokenEvent(token, text, float(logprobs[token]), best)
