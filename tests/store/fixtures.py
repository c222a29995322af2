"""The model store's shared fixtures: real registries, a stand-in hub, a factory model.

A plugin of the root conftest (`pytest_plugins`), so the store, library and CLI
tests share one registry server and one tiny model per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.hub_server import FakeHub
from tests.store.registry_server import (
    SKIP_REASON,
    RegistryServer,
    htpasswd_line,
    registry_binary,
)

REGISTRY_USER, REGISTRY_PASSWORD = "mlx", "s3cret-pass"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight qwen2 (tiny) with a real tokenizer, built once per session."""
    from mlxctl.factory import make_model  # MLX: imported only by the tests that use it

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
