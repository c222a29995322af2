"""Blocking store work in a thread, its progress events handed to the event loop as they come.

`progress_events(work)` runs `work(sink)` in the default executor and yields each
progress event (`store.progress.EventSink`'s dicts) as it happens, then the work's
result as `{"result": ...}`; an exception of the work is raised after the last event.
A client that goes away stops the iteration, not the work: a pull still completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from mlxctl.store.progress import EventSink, Progress

_DONE = object()


async def progress_events(work: Callable[[Progress], Any]) -> AsyncIterator[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    sink = EventSink(emit)
    task = loop.run_in_executor(None, work, sink)
    # Queued after every event the work emitted: the loop below drains them all first.
    task.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, _DONE))
    while (item := await queue.get()) is not _DONE:
        assert isinstance(item, dict)
        yield item
    yield {"result": task.result()}
