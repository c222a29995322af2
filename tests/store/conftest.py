"""Fixtures for store tests; the builders live in store_helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.store.store_helpers import folder_files, write_model


@pytest.fixture
def model_files(tmp_path: Path) -> Callable[..., dict[str, bytes]]:
    """The files of a freshly written tiny model, as bytes to lay out in a cache."""
    counter = iter(range(1_000))

    def make(**kwargs: Any) -> dict[str, bytes]:
        return folder_files(write_model(tmp_path / f"src-{next(counter)}", **kwargs))

    return make


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    return cache


# --- The model store (issue 7): real registries, a stand-in hub, factory models. ---

from collections.abc import Iterator  # noqa: E402

from mlxctl.factory import make_model  # noqa: E402
from tests.store.hub_server import FakeHub  # noqa: E402
from tests.store.registry_server import (  # noqa: E402
    SKIP_REASON,
    RegistryServer,
    htpasswd_line,
    registry_binary,
)

REGISTRY_USER, REGISTRY_PASSWORD = "mlx", "s3cret-pass"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight qwen2 (tiny) with a real tokenizer, built once per session."""
    return make_model(tmp_path_factory.mktemp("factory") / "tiny-qwen2", arch="qwen2", size="tiny")


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """docker-registry without authentication (tests use distinct repositories)."""
    if registry_binary() is None:
        pytest.skip(SKIP_REASON)
    server = RegistryServer(tmp_path_factory.mktemp("registry-open")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oci_registry_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """docker-registry with htpasswd (bcrypt) basic auth for REGISTRY_USER."""
    if registry_binary() is None:
        pytest.skip(SKIP_REASON)
    root = tmp_path_factory.mktemp("registry-htpasswd")
    (root / "htpasswd").write_text(htpasswd_line(REGISTRY_USER, REGISTRY_PASSWORD))
    auth = {"htpasswd": {"realm": "mlxctl-test", "path": str(root / "htpasswd")}}
    server = RegistryServer(root, auth=auth).start()
    yield server
    server.stop()


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The stand-in hub, with HF_ENDPOINT pointing at it and no token around."""
    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield hub
    hub.stop()
