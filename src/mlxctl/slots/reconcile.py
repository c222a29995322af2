"""The reconcile plan: desired slots (the registry) against what is observed → actions.

Pure: `plan(views)` does no I/O and never logs; the supervisor observes, plans and
executes. Per slot it reports drift (what differs, as short sentences) and either
an action that fixes it or an `unfixable` entry saying why not.

    desired   observed on the port                     action       drift
    model M   nothing                                  start M      dead worker / not running
    model M   our worker, serving M (ok)               adopt        - (adopt only if pid is new)
    model M   our worker, another model                restart M    wrong model
    model M   a process mlxctl did not start           -            foreign process (unfixable)
    model M   M's folder missing from disk             -            model missing (unfixable)
    nothing   our worker                               stop         serving without assignment

"Ours" is proven, not guessed from a command line: the slot's pid file names the
process (pid, create time) and the port's listener is in its group, or its /health
carries the nonce it was started with (`supervision.process.recognise`). An MLX
server mlxctl did not start is never adopted; `load --force` or `unload` replace it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ActionKind = Literal["start", "stop", "restart", "adopt", "forget"]


@dataclass(frozen=True)
class Observed:
    """What the port shows: its listener and, for an MLX server, its /health answer."""

    pid: int | None = None
    command: str | None = None
    mlx_kind: str | None = None
    model: str | None = None
    status: str | None = None
    ours: bool = False  # a process this or a previous daemon started for the slot

    @property
    def listening(self) -> bool:
        return self.pid is not None or self.command is not None or self.status is not None


@dataclass(frozen=True)
class SlotView:
    port: int
    alias: str
    desired: str | None
    recorded_pid: int | None
    observed: Observed
    model_on_disk: bool = True
    blocked: str | None = None  # why the desired model may not start (strict verify)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    port: int
    model: str | None = None
    pid: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "slot": self.port,
            "model": self.model,
            "pid": self.pid,
            "reason": self.reason,
        }


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    drift: dict[int, list[str]] = field(default_factory=dict)
    unfixable: list[dict[str, Any]] = field(default_factory=list)


def plan(views: list[SlotView]) -> Plan:
    result = Plan()
    for view in views:
        drift, action, unfixable = _one(view)
        result.drift[view.port] = drift
        if action is not None:
            result.actions.append(action)
        if unfixable is not None:
            result.unfixable.append(
                {"slot": view.port, "model": view.desired, "problem": unfixable}
            )
    return result


def _one(view: SlotView) -> tuple[list[str], Action | None, str | None]:
    seen, port, want = view.observed, view.port, view.desired
    if want is None:
        if not seen.listening:
            if view.recorded_pid is not None:
                return [], Action("forget", port, pid=view.recorded_pid, reason="exited"), None
            return [], None, None
        if seen.ours and seen.pid is not None and seen.pid == view.recorded_pid:
            reason = f"serving '{seen.model}' but no model is assigned"
            return [reason], Action("stop", port, seen.model, seen.pid, reason), None
        return [], None, None  # someone else's server on an empty slot is not ours to judge
    if not view.model_on_disk:
        problem = f"model '{want}' is missing from disk"
        return [problem], None, problem
    if not seen.listening:
        if view.blocked:
            return [f"not running: {view.blocked}"], None, view.blocked
        reason = "dead worker" if view.recorded_pid is not None else "not running"
        return [reason], Action("start", port, want, None, reason), None
    if not seen.ours:
        return _foreign(seen, want)
    if seen.model not in (None, want):
        reason = f"wrong model: serving '{seen.model}' instead of '{want}'"
        return [reason], Action("restart", port, want, seen.pid, reason), None
    if seen.status == "failed":
        reason = "the worker failed to load its model"
        return [reason], Action("restart", port, want, seen.pid, reason), None
    if seen.status == "loading":
        return [], None, None
    if seen.pid is not None and seen.pid != view.recorded_pid:
        return [], Action("adopt", port, want, seen.pid, "serving the desired model"), None
    return [], None, None


def _foreign(seen: Observed, want: str) -> tuple[list[str], Action | None, str | None]:
    """A process mlxctl did not start holds the port: say what it is; never touch it."""
    if seen.mlx_kind is None:
        problem = f"a foreign process listens on the port: {_who(seen)}"
        return [problem], None, problem
    what = f"{seen.mlx_kind} {_who(seen)}, not started by mlxctl"
    if seen.model not in (None, want):
        reason = f"wrong model: serving '{seen.model}' instead of '{want}'"
        return [reason], None, f"{reason} ({what})"
    problem = f"the port is held by {what}: `load --force` or `unload` replaces it"
    return [problem], None, problem


def _who(seen: Observed) -> str:
    who = f"pid {seen.pid}" if seen.pid is not None else "unknown pid"
    return f"{who} ({seen.command})" if seen.command else who
