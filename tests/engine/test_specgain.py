"""The speculation pause rule: it follows acceptance and quiet costs, not one slow step."""

from __future__ import annotations

from mlxctl.engine.specgain import GainRule, RoundCosts

PLAIN = 0.003  # a plain step, seconds
ROUND = 0.006  # a round of 3 drafts, seconds: two plain steps' worth


def _costs() -> RoundCosts:
    costs = RoundCosts()
    for _ in range(8):
        costs.add_plain(PLAIN)
    return costs


def _round(rule: GainRule, kept: int, seconds: float = ROUND) -> None:
    rule.costs.add_round(kept, 3, seconds)
    rule.round_done(kept, 3)


def _plain_steps(rule: GainRule) -> int:
    steps = 0
    while not rule.ready:
        rule.plain_step()
        steps += 1
    return steps


def test_rounds_that_pay_go_on_though_the_machine_sets_some_aside() -> None:
    rule = GainRule(_costs(), 3, timed=True)
    _plain_steps(rule)
    for i in range(40):  # (the first slow one is priced without the clock: too few samples)
        # Every third round took 20× longer (the OS ran another job): the quiet cost counts.
        _round(rule, 3, ROUND * (20 if i % 3 == 0 else 1))
        assert rule.ready, f"paused at round {i}"


def test_rounds_that_keep_nothing_pause_for_longer_each_time() -> None:
    rule = GainRule(_costs(), 3, timed=True)
    _plain_steps(rule)
    pauses = []
    for _ in range(5):
        _round(rule, 0)  # 1 token for two plain steps' cost
        pauses.append(_plain_steps(rule))
    assert pauses == [4, 8, 16, 32, 32]
    _round(rule, 3)  # a probe that pays: speculation goes on, the next pause is short again
    assert rule.ready
    while rule.ready:
        _round(rule, 0)
    assert _plain_steps(rule) == 4


def test_a_round_that_costs_its_keep_is_judged_on_its_own_cost() -> None:
    rule = GainRule(_costs(), 3, timed=True)
    _plain_steps(rule)
    # 2 tokens a round: pays when a round costs under two plain steps, not above.
    for _ in range(6):
        _round(rule, 1, 1.5 * PLAIN)
    assert rule.ready
    for _ in range(16):  # once the quiet samples of that round cost more (a busier model)
        _round(rule, 1, 2.5 * PLAIN)
        rule.pause = min(rule.pause, 0) if rule.ready else rule.pause
    assert not rule.ready


def test_a_sampled_request_reads_no_clock() -> None:
    fast, slow = RoundCosts(), RoundCosts()
    for _ in range(8):
        fast.add_plain(PLAIN)
        slow.add_plain(PLAIN)
        fast.add_round(1, 3, PLAIN)
        slow.add_round(1, 3, 100 * PLAIN)
    rules = [GainRule(costs, 3, timed=False) for costs in (fast, slow)]
    paths = []
    for rule in rules:
        path = []
        for kept in (3, 2, 0, 0, 1, 0, 0, 0, 3, 3):
            rule.pause = 0
            rule.round_done(kept, 3)
            path.append(rule.pause)
        paths.append(path)
    assert paths[0] == paths[1]
    assert any(paths[0])  # it does pause: a third of the drafts standing does not pay


def test_nothing_proposed_pauses_a_little_longer_each_time() -> None:
    rule = GainRule(_costs(), 3, timed=True)
    _plain_steps(rule)
    pauses = []
    for _ in range(5):
        rule.nothing_proposed()
        pauses.append(_plain_steps(rule))
    assert pauses == [2, 4, 4, 4, 4]
    _round(rule, 3)
    rule.nothing_proposed()
    assert _plain_steps(rule) == 2


def test_a_round_of_a_new_count_is_priced_from_rounds_of_its_length() -> None:
    costs = _costs()
    for _ in range(4):
        costs.add_round(9, 9, 2 * PLAIN)
    # Kept 2 of 9, never seen: the clock's price of a 9-token round, not the prior (3.7 steps).
    assert costs.gain(2, 9) == 3 * PLAIN / (2 * PLAIN)
    assert costs.gain(2, 6) is None
