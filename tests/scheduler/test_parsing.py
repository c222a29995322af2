from __future__ import annotations

import re

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.scheduler.budget import parse_budget
from mlxctl.scheduler.config import SchedulerConfig
from mlxctl.scheduler.keepalive import PATTERN, format_keep_alive, parse_keep_alive
from mlxctl.settings import Settings


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (0, 0.0),
        (-1, None),
        ("-1", None),
        ("-5m", None),
        ("0", 0.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        (" 10M ", 600.0),
    ],
)
def test_keep_alive_values(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        *("soon", "5x", "", True, None, [], "m5", float("nan")),
        # float() took these, but the published PATTERN does not.
        *("+5", "1e5", "1_0", "inf", "\u00b2", "5m\n", "\x0b5m", "\u0665"),
    ],
)
def test_bad_keep_alive_names_the_field(value: object) -> None:
    with pytest.raises(InvalidInput, match="'keep_alive' must be seconds or a duration"):
        parse_keep_alive(value)


@pytest.mark.parametrize("value", [10**400, 1e300, -(10**400), "9" * 20 + "h"])
def test_keep_alive_past_any_date_is_forever(value: object) -> None:
    # 1e308 used to reach /api/ps, whose expiry date overflowed (a 500); 10**400 overflowed here.
    assert parse_keep_alive(value) is None


@pytest.mark.parametrize("text", ["5m", " 10M ", "-1", "2.5", "1h30m", "500ms", "x", "5 m", "1e3"])
def test_the_published_pattern_is_what_parses(text: str) -> None:
    try:
        parse_keep_alive(text)
        accepted = True
    except InvalidInput:
        accepted = False
    assert accepted == bool(re.fullmatch(PATTERN, text))


def test_keep_alive_formats_back() -> None:
    assert [format_keep_alive(v) for v in (None, 0, 2.5, 300, 5400, 45)] == [
        "forever",
        "0s",
        "2.5s",
        "5m",
        "1h30m",
        "45s",
    ]


def test_budget_as_share_or_size() -> None:
    total = 24 * 2**30
    assert parse_budget("75%", total) == 18 * 2**30
    assert parse_budget("16GiB", total) == 16 * 2**30
    assert parse_budget("512MB", total) == 512_000_000
    assert parse_budget("1000", total) == 1000
    for bad in ("lots", "0%", "150%"):
        with pytest.raises(InvalidInput, match="memory budget"):
            parse_budget(bad, total)


def test_config_from_settings_reads_every_limit() -> None:
    settings = Settings.from_env(
        {
            "MLXCTL_MEMORY_BUDGET": "50%",
            "MLXCTL_KEEP_ALIVE": "-1",
            "MLXCTL_MAX_LOADED_MODELS": "2",
            "MLXCTL_MAX_QUEUE": "7",
        }
    )
    config = SchedulerConfig.from_settings(settings, total_memory=8_000_000_000)
    assert config.budget == 4_000_000_000
    assert config.budget_text == "MLXCTL_MEMORY_BUDGET=50% of 8.0 GB"
    assert config.keep_alive is None and config.max_loaded == 2 and config.max_queue == 7
