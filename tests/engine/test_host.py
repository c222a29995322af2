"""The engine host with a recording backend: the contract every engine plugs into."""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlxctl.engine.host import EngineHost, QueueFull
from mlxctl.engine.outbox import Job, Outbox
from mlxctl.engine.types import DoneEvent, TokenEvent
from mlxctl.errors import Unavailable

from .streams import collect, greedy, run


class Recorder:
    """A backend that writes token `i` at step `i`, with `room` seats; records each call."""

    def __init__(self, outbox: Outbox, room: int) -> None:
        self.out = outbox
        self.room = room
        self.running: list[Job] = []
        self.calls: list[str] = []
        self.fail_steps: set[int] = set()
        self.fail_admit = False
        self.steps = 0

    def admit(self, job: Job) -> bool:
        if self.fail_admit:
            raise RuntimeError("no seat for you")
        if len(self.running) >= self.room:
            return False
        self.calls.append("admit")
        job.cached = 1
        self.running.append(job)
        return True

    def step(self) -> None:
        self.steps += 1
        if self.steps in self.fail_steps:
            raise RuntimeError("device lost")
        time.sleep(0.002)  # long enough for a cancel to arrive mid-stream
        for job in list(self.running):
            job.generated += 1
            job.first_token = job.first_token or time.perf_counter()
            self.out.stats.add_tokens(generated=1)
            self.out.send(job, TokenEvent(job.generated, f"<{job.generated}>"))
            if job.generated >= job.max_tokens:
                self.running.remove(job)
                self.out.finish(job, "length")

    def cancel(self, job: Job) -> None:
        self.calls.append("cancel")
        self.running.remove(job)

    def reset(self) -> None:
        self.calls.append("reset")
        self.running.clear()

    def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        if token_lists == [[13]]:
            raise RuntimeError("unlucky input")
        return [[float(len(tokens))] for tokens in token_lists]

    def publish(self, *, force: bool) -> None:
        pass

    def close(self) -> None:
        self.calls.append("close")


class Host(EngineHost[Recorder]):
    def __init__(self, path: Path, *, room: int = 2, max_queue: int = 8) -> None:
        super().__init__(path, max_batch=4, max_queue=max_queue)
        self.room = room
        self.backend: Recorder | None = None

    def _load(self, outbox: Outbox) -> Recorder:
        self.context_length, self.vocab_size = 64, 32
        self.backend = Recorder(outbox, self.room)
        return self.backend

    async def embed(self, token_lists: list[list[int]]) -> list[list[float]]:
        return await self._embed(token_lists)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    host = Host(tmp_path)
    host.start()
    yield host
    host.close()


def calls(host: Host) -> list[str]:
    assert host.backend is not None
    return host.backend.calls


def test_tokens_then_one_done_with_the_backends_figures(host: Host) -> None:
    result = run(collect(host, greedy([1, 2, 3], 3)))
    assert result.text == "<1><2><3>" and result.done is not None
    done = result.done
    assert (done.finish_reason, done.prompt_tokens, done.completion_tokens) == ("length", 3, 3)
    assert done.cached_tokens == 1 and done.error is None
    assert (done.time_to_first_token or 0) > 0 and (done.generation_seconds or 0) > 0
    stats = host.stats()
    assert stats["tokens_prompt_total"] == 3 and stats["tokens_cached_total"] == 1
    assert stats["tokens_generated_total"] == 3 and stats["active"] == 0


def test_a_job_waits_while_the_backend_has_no_room(tmp_path: Path) -> None:
    host = Host(tmp_path, room=1)
    host.start()
    try:

        async def both() -> list[str]:
            results = await asyncio.gather(*(collect(host, greedy([1], 4)) for _ in range(2)))
            return [r.text for r in results]

        assert run(both()) == ["<1><2><3><4>"] * 2
        assert host.stats()["batch_peak"] == 1  # the second started when the first ended
    finally:
        host.close()


def test_a_failing_step_ends_the_running_jobs_and_resets_the_backend(host: Host) -> None:
    assert host.backend is not None
    host.backend.fail_steps = {2}
    failed = run(collect(host, greedy([1], 5)))
    assert failed.text == "<1>" and failed.done is not None
    assert failed.done.finish_reason == "error" and "device lost" in (failed.done.error or "")
    assert calls(host) == ["admit", "reset"]
    after = run(collect(host, greedy([1], 2)))
    assert after.done is not None and after.done.finish_reason == "length"
    assert host.stats()["errors_total"] == 1


def test_a_failing_admit_ends_that_job_only(host: Host) -> None:
    assert host.backend is not None
    host.backend.fail_admit = True
    result = run(collect(host, greedy([1], 2)))
    assert result.done is not None and result.done.finish_reason == "error"
    assert "could not start" in (result.done.error or "")
    host.backend.fail_admit = False
    assert run(collect(host, greedy([1], 2))).text == "<1><2>"


def test_closing_the_stream_cancels_the_backends_sequence(host: Host) -> None:
    async def read_two() -> None:
        stream = host.generate(greedy([1], 1000))
        async for event in stream:
            assert isinstance(event, TokenEvent)
            if event.token == 2:
                break
        await stream.aclose()

    run(read_two())
    deadline = time.monotonic() + 10
    while host.stats()["active"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls(host) == ["admit", "cancel"]
    assert host.stats()["cancelled_total"] == 1 and host.stats()["queue_depth"] == 0


def test_queue_full_before_any_event(tmp_path: Path) -> None:
    host = Host(tmp_path, room=1, max_queue=0)
    host.start()
    try:

        async def crowd() -> None:
            first = host.generate(greedy([1], 1000))
            await anext(first)  # running: a batch of 4 and a queue of 0 leave 3 places
            waiting = [asyncio.create_task(anext(host.generate(greedy([1], 5)))) for _ in range(3)]
            await asyncio.sleep(0.05)  # each has been submitted (the backend has one seat)
            with pytest.raises(QueueFull):
                await anext(host.generate(greedy([1], 5)))
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            await first.aclose()

        run(crowd())
        assert host.stats()["requests_total"] == 4
    finally:
        host.close()


def test_calls_run_between_steps_and_count(host: Host) -> None:
    assert run(host.embed([[1, 2], [3]])) == [[2.0], [1.0]]
    with pytest.raises(RuntimeError, match="unlucky"):
        run(host.embed([[13]]))
    with pytest.raises(ValueError):
        run(host.embed([[99]]))  # outside the vocabulary: refused before the thread
    stats = host.stats()
    assert stats["embed_requests_total"] == 1 and stats["embed_inputs_total"] == 2
    assert stats["errors_total"] == 1


def test_close_ends_running_jobs_then_closes_the_backend(host: Host) -> None:
    async def cut_short() -> DoneEvent:
        stream = host.generate(greedy([1], 1000))
        await anext(stream)
        await asyncio.to_thread(host.close)
        async for event in stream:
            if isinstance(event, DoneEvent):
                return event
        raise AssertionError("no DoneEvent")

    done = run(cut_short())
    assert done.finish_reason == "error" and done.error == "the engine was closed"
    assert calls(host)[-1] == "close"
    with pytest.raises(Unavailable):
        run(collect(host, greedy([1], 2)))
    with pytest.raises(Unavailable):
        run(host.embed([[1]]))


def test_the_engine_package_has_no_import_circle() -> None:
    """llamacpp ⇄ llamaslots was one: every engine module imports only modules below it."""
    root = Path(__file__).resolve().parents[2] / "src" / "mlxctl" / "engine"
    graph = {path.stem: _engine_imports(path) for path in root.glob("*.py")}
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, f"import circle: {' -> '.join((*trail, name))}"
        if name not in order:
            for target in sorted(graph.get(name, ())):
                visit(target, (*trail, name))
            order.append(name)

    for name in sorted(graph):
        visit(name, ())
    assert set(order) == set(graph)


def _engine_imports(path: Path) -> set[str]:
    """The engine modules `path` imports, at the top, in functions or for type checking."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "mlxctl.engine":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlxctl.engine."):
            names.add((node.module or "").split(".")[2])
    names.discard(path.stem)
    return names
