"""The pure reconcile plan: desired vs observed → actions, drift, unfixable."""

from __future__ import annotations

from mlxctl.slots.reconcile import Observed, SlotView, plan

OURS = "mlxctl worker"


def ours(pid: int, model: str, status: str = "ok") -> Observed:
    """A worker proven ours (pid file + listener or nonce), as the supervisor observes it."""
    return Observed(pid, "x", OURS, model, status, ours=True)


def view(desired: str | None, seen: Observed, **kw: object) -> SlotView:
    return SlotView(8100, "jerry-xl", desired, kw.pop("pid", None), seen, **kw)  # type: ignore[arg-type]


def one(v: SlotView) -> tuple[list[tuple[str, int | None]], list[str], list[str]]:
    p = plan([v])
    actions: list[tuple[str, int | None]] = [(a.kind, a.pid) for a in p.actions]
    return actions, p.drift[8100], [u["problem"] for u in p.unfixable]


def test_matching_slot_needs_nothing() -> None:
    assert one(view("m", ours(10, "m"), pid=10)) == ([], [], [])


def test_dead_worker_is_started() -> None:
    assert one(view("m", Observed(), pid=10)) == ([("start", None)], ["dead worker"], [])
    assert one(view("m", Observed())) == ([("start", None)], ["not running"], [])


def test_new_pid_serving_desired_model_is_adopted() -> None:
    assert one(view("m", ours(11, "m"), pid=10)) == ([("adopt", 11)], [], [])


def test_an_mlx_server_mlxctl_did_not_start_is_never_adopted() -> None:
    # Its command line says `mlxctl worker` and it serves the model: still not proven ours.
    for kind in (OURS, "mlx_lm.server"):
        actions, drift, unfixable = one(view("m", Observed(11, "x", kind, "m", "ok"), pid=10))
        assert actions == [] and "not started by mlxctl" in unfixable[0] == drift[0]
        assert "--force" in unfixable[0]


def test_wrong_model_restarts_ours_but_not_others() -> None:
    actions, drift, _ = one(view("m", ours(10, "other"), pid=10))
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
    assert one(view(None, ours(10, "m"), pid=10))[0] == [("stop", 10)]
    assert one(view(None, ours(12, "m"), pid=10))[0] == []
    assert one(view(None, Observed(10, "x", OURS, "m", "ok"), pid=10))[0] == []
    assert one(view(None, Observed(), pid=10))[0] == [("forget", 10)]


def test_loading_worker_is_left_alone() -> None:
    assert one(view("m", ours(10, "m", "loading"), pid=10)) == ([], [], [])


def test_an_external_server_of_ours_is_judged_like_our_worker() -> None:
    # No MLX kind in its command line (llama-server): proven ours by its pid file.
    seen = Observed(10, "llama-server --port 8100", None, "m", "ok", ours=True)
    assert one(view("m", seen, pid=10)) == ([], [], [])
    assert one(view("m", seen, pid=9))[0] == [("adopt", 10)]
