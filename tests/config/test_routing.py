"""A routing alias's choice: loaded and free, else fits, else first."""

from __future__ import annotations

from mlxctl.config.routing import Placement, choose
from mlxctl.registry import ModelRecord

BIG, SMALL = ModelRecord(slug="big", cache_path="/b"), ModelRecord(slug="small", cache_path="/s")
ABSENT_FITS = Placement(loaded=False, saturated=False, fits=True)
ABSENT = Placement(loaded=False, saturated=False, fits=False)
READY = Placement(loaded=True, saturated=False, fits=True)
FULL = Placement(loaded=True, saturated=True, fits=True)


def test_a_loaded_free_model_wins_over_an_earlier_one_to_load() -> None:
    assert choose([(BIG, ABSENT_FITS), (SMALL, READY)]) is SMALL


def test_a_saturated_model_gives_way_to_one_that_fits() -> None:
    assert choose([(SMALL, FULL), (BIG, ABSENT_FITS)]) is BIG


def test_the_first_that_fits_then_the_first() -> None:
    assert choose([(BIG, ABSENT), (SMALL, ABSENT_FITS)]) is SMALL
    assert choose([(BIG, ABSENT), (SMALL, ABSENT)]) is BIG
