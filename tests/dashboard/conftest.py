"""Daemons, factory models and a fake hub for the dashboard's tests (tests/api's fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import start_daemon, tiny_models  # noqa: F401
from tests.slots.conftest import slot_env  # noqa: F401
from tests.store.hub_server import FakeHub

REPO = "mlx-test/pulled"


@pytest.fixture
def hub(tiny_models: dict[str, Path]) -> Iterator[FakeHub]:  # noqa: F811
    """A hub holding the tiny qwen2 model as `REPO`."""
    hub = FakeHub()
    hub.add_repo(REPO, tiny_models["qwen2"])
    yield hub
    hub.stop()


def hub_env(hub: FakeHub) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": ""}
