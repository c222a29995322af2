"""The pure reconcile plan: desired vs observed → actions, drift, unfixable."""

from __future__ import annotations

from mlxctl.slots.reconcile import Observed, SlotView, plan

OURS = "mlxctl worker"


def view(desired: str | None, seen: Observed, **kw: object) -> SlotView:
    return SlotView(8100, "jerry-xl", desired, kw.pop("pid", None), seen, **kw)  # type: ignore[arg-type]


def one(v: SlotView) -> tuple[list[tuple[str, int | None]], list[str], list[str]]:
    p = plan([v])
    actions: list[tuple[str, int | None]] = [(a.kind, a.pid) for a in p.actions]
    return actions, p.drift[8100], [u["problem"] for u in p.unfixable]


def test_matching_slot_needs_nothing() -> None:
    seen = Observed(10, "x", OURS, "m", "ok")
    assert one(view("m", seen, pid=10)) == ([], [], [])


def test_dead_worker_is_started() -> None:
    assert one(view("m", Observed(), pid=10)) == ([("start", None)], ["dead worker"], [])
    assert one(view("m", Observed())) == ([("start", None)], ["not running"], [])


def test_new_pid_serving_desired_model_is_adopted() -> None:
    seen = Observed(11, "x", OURS, "m", "ok")
    assert one(view("m", seen, pid=10)) == ([("adopt", 11)], [], [])


def test_wrong_model_restarts_ours_but_not_others() -> None:
    actions, drift, _ = one(view("m", Observed(10, "x", OURS, "other", "ok"), pid=10))
    assert actions == [("restart", 10)] and "wrong model" in drift[0]
    actions, _, unfixable = one(view("m", Observed(10, "x", "mlx_lm.server", "other", "ok")))
    assert actions == [] and "not started by mlxctl" in unfixable[0]


def test_foreign_process_and_missing_model_are_unfixable() -> None:
    actions, drift, unfixable = one(view("m", Observed(7, "python -m http.server", None)))
    assert actions == [] and "pid 7 (python -m http.server)" in unfixable[0] == drift[0]
    actions, drift, unfixable = one(view("m", Observed(), model_on_disk=False))
    assert actions == [] and "missing from disk" in unfixable[0]


def test_strict_blocked_model_is_not_started() -> None:
    actions, drift, unfixable = one(view("m", Observed(), blocked="needs harmony"))
    assert actions == [] and unfixable == ["needs harmony"] and "needs harmony" in drift[0]


def test_unassigned_slot_stops_only_our_recorded_worker() -> None:
    assert one(view(None, Observed(10, "x", OURS, "m", "ok"), pid=10))[0] == [("stop", 10)]
    assert one(view(None, Observed(12, "x", OURS, "m", "ok"), pid=10))[0] == []
    assert one(view(None, Observed(), pid=10))[0] == [("forget", 10)]


def test_loading_worker_is_left_alone() -> None:
    assert one(view("m", Observed(10, "x", OURS, "m", "loading"), pid=10)) == ([], [], [])
