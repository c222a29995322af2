"""The seeds' Mini → Studio: a second, empty home drives the Studio daemon through MLXCTL_HOST.

Two homes on one machine: the "studio" home belongs to a real `mlxctl serve`, the
"mini" home is the CLI's. Every registry and store command answers with the
studio's data, prints what a local run on the studio prints, and leaves the mini's
registry and store untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlxctl.cli.backend import DaemonBackend, LocalBackend, backend, serves_this_home
from mlxctl.settings import Settings
from tests.api.conftest import Daemon, StartDaemon, start_daemon  # noqa: F401
from tests.cli.runner import Run
from tests.gateway.conftest import free_port
from tests.store.registry_server import RegistryServer

pytestmark = pytest.mark.slow


@pytest.fixture
def studio(start_daemon: StartDaemon, hf_cache: Path) -> Daemon:  # noqa: F811
    """The daemon, on the test's home and HF cache (which holds two factory models)."""
    return start_daemon()


@pytest.fixture
def mini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, studio: Daemon) -> Path:
    """The CLI's own home from here on: empty, with MLXCTL_HOST naming the studio."""
    home = tmp_path / "mini-home"
    monkeypatch.setenv("MLXCTL_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "mini-hf"))
    monkeypatch.setenv("MLXCTL_HOST", f"127.0.0.1:{studio.port}")
    return home


@contextmanager
def on_the_studio(monkeypatch: pytest.MonkeyPatch, studio_home: Path) -> Iterator[None]:
    """Run the CLI as a user on the studio itself would, without a daemon address."""
    with monkeypatch.context() as m:
        m.setenv("MLXCTL_HOME", str(studio_home))
        m.setenv("HF_HUB_CACHE", str(studio_home.parent / "hf-cache"))
        m.delenv("MLXCTL_HOST")
        yield


def test_every_registry_and_store_command_answers_from_the_daemon(
    run: Run,
    studio: Daemon,
    isolated_home: Path,
    mini: Path,
    oci_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = f"{oci_registry.host}/remote/{uuid.uuid4().hex[:8]}"
    assert isinstance(backend(), DaemonBackend)

    added = run("init", "--json").ok().json()["added"]
    assert sorted(r["slug"] for r in added) == ["tiny-llama-4bit", "tiny-qwen2"]
    assert run("cp", "tiny-qwen2", "tiny").ok().out.strip() == "Copied tiny-qwen2 to tiny"

    # push: a model of the (studio's) HF cache joins the store on the way, by hard links.
    pushed = run("push", "tiny-llama-4bit", f"{repo}/llama:v1", "--json").ok().json()
    assert pushed["took_into_store"] is True and pushed["uploaded"]
    human = run("push", "tiny", f"{repo}/tiny:v1").ok()
    assert f"Pushed tiny to {repo}/tiny:v1" in human.out
    assert "model.safetensors" in human.err  # the daemon's progress, drawn here

    removed = run("rm", "tiny", "-y").ok()
    assert "Removed tiny" in removed.out
    pulled = run("pull", f"oci://{repo}/tiny:v1", "--name", "tiny-back").ok()
    assert f"Pulled {repo}/tiny:v1 as tiny-back" in pulled.out
    assert "model.safetensors" in pulled.err

    spec = tmp_path / "spec" / "ModelSpec"
    spec.parent.mkdir()
    spec.write_text('FROM tiny-back\nSYSTEM """Short answers."""\n')
    created = run("create", "terse", "-f", str(spec)).ok()
    assert created.out.strip() == "Created terse (3 new blob(s))"
    assert run("show", "terse", "--modelfile").ok().out.startswith("FROM tiny-back\n")
    updated = run("registry", "set", "terse", "--tool-call-parser", "hermes").ok()
    assert updated.out.strip() == "Updated terse"
    refused = run("registry", "set", "terse", "--reasoning-parser", "qwen9")
    assert refused.code == 2 and "unknown reasoning parser 'qwen9'" in refused.err
    exported = tmp_path / "registry.json"
    run("registry", "export", "-o", str(exported)).ok()
    assert run("registry", "import", str(exported)).ok().out.strip() == (
        f"Imported 4 model(s) from {exported}"
    )
    remote = {
        "list": run("list", "--json").ok().out,
        "show": run("show", "tiny-llama-4bit").ok().out,
        "export": run("registry", "export").ok().out,
    }
    slugs = [r["slug"] for r in run("list", "--json").ok().json()]
    assert slugs == ["terse", "tiny-back", "tiny-llama-4bit", "tiny-qwen2"]
    assert run("store", "verify", "--json").ok().json()["ok"] is True

    # The same commands on the studio itself, without a daemon address: the same output.
    with on_the_studio(monkeypatch, isolated_home):
        assert isinstance(backend(), LocalBackend)  # this home's daemon is not on 11500
        local = {
            "list": run("list", "--json").ok().out,
            "show": run("show", "tiny-llama-4bit").ok().out,
            "export": run("registry", "export").ok().out,
        }
    assert remote == local

    # Nothing was written on the mini.
    assert not mini.exists()


def test_an_explicit_host_must_answer(run: Run, mini: Path, studio: Daemon) -> None:
    port = free_port()
    with pytest.MonkeyPatch.context() as m:
        m.setenv("MLXCTL_HOST", f"127.0.0.1:{port}")
        for args in (("list",), ("registry", "export"), ("rm", "tiny-qwen2", "-y")):
            failed = run(*args)
            assert failed.code == 5, args
            assert f"no mlxctl daemon at http://127.0.0.1:{port}" in failed.err
    assert not mini.exists()  # never a silent fall back to the local registry


def test_the_default_address_counts_only_for_its_own_home(
    studio: Daemon, isolated_home: Path, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{studio.port}"
    own = Settings.from_env({"MLXCTL_HOME": str(isolated_home), "MLXCTL_HOST": address})
    other = Settings.from_env({"MLXCTL_HOME": str(tmp_path / "other"), "MLXCTL_HOST": address})
    assert serves_this_home(own) is True
    assert serves_this_home(other) is False
    nobody = Settings.from_env({"MLXCTL_HOST": f"127.0.0.1:{free_port()}"})
    assert serves_this_home(nobody) is False
