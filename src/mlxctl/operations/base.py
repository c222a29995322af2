"""What every operation shares: its context, its arguments' base class, its table entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Strict, StringConstraints

from mlxctl.model_options import ModelOptions
from mlxctl.registry import ModelRecord, Registry
from mlxctl.settings import Settings
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.progress import NoProgress, Progress

Result = dict[str, Any]
# A name, path or text an operation acts on: never empty or blank (the schema says so too).
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
# JSON true/false and whole numbers only: `0` is not false, `"8100"` is not a port.
Flag = Annotated[bool, Strict()]
Number = Annotated[int, Strict()]


def _serves_nothing(record: ModelRecord) -> list[str]:
    return []


@dataclass
class Context:
    """Where an operation runs: the daemon's registry and store, or the local ones.

    `stop_serving(record)` ends whatever serves a model before its files go (the
    daemon unloads it, from an on-demand worker or a slot) and names what it
    stopped; without a daemon nothing is loaded, so it does nothing. `over_api`
    operations act for an HTTP client and refuse what only a local user may ask for
    (a plain-http registry, unless the daemon allows it). Operations
    run in a worker thread on the daemon: they may block, and call it from there.
    """

    settings: Settings
    registry: Registry
    progress: Progress = field(default_factory=NoProgress)
    stop_serving: Callable[[ModelRecord], list[str]] = _serves_nothing
    over_api: bool = False  # on behalf of an HTTP client (the daemon), not the local CLI
    # The options a model runs with (config.yaml section, preset, load preset); None: the
    # settings' defaults only.
    options: Callable[[ModelRecord], ModelOptions] | None = None

    @cached_property
    def layout(self) -> StoreLayout:
        return StoreLayout(self.settings.store_dir)


class Args(BaseModel):
    """An operation's arguments: the admin route's JSON body, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


A = TypeVar("A", bound=Args)


@dataclass(frozen=True)
class Operation(Generic[A]):
    """One operation: its admin route, its arguments and the one function that does it.

    `streams`: the route answers NDJSON progress lines and then the result (see
    `api/admin/operations.py`); the CLI draws them as it draws a local run's progress.
    """

    name: str
    method: Literal["GET", "POST"]
    path: str
    args: type[A]
    run: Callable[[Context, A], Result]
    streams: bool = False

    @property
    def summary(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]
