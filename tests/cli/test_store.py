"""The store commands through the real `mlxctl` entry point (errors as one line + hint)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mlxctl.engine import mlxlm
from mlxctl.library import catalog
from mlxctl.registry import Registry
from mlxctl.settings import Settings
from mlxctl.store.content.manifest import WEIGHTS
from mlxctl.store.content.tags import parse_name
from tests.cli.runner import Result
from tests.store.fixtures import REGISTRY_PASSWORD, REGISTRY_USER
from tests.store.registry_server import RegistryServer

Run = Callable[..., Result]


@pytest.fixture
def tiny(run: Run, tiny_model: Path) -> str:
    assert run("register", str(tiny_model), "--slug", "tiny-src").code == 0
    copied = run("cp", "tiny-src", "tiny")
    assert copied.code == 0, copied.err
    assert copied.out.strip() == "Copied tiny-src to tiny"
    return "tiny"


def test_push_rm_pull_from_the_command_line(
    run: Run, tiny: str, oci_registry: RegistryServer, registry: Registry
) -> None:
    target = f"{oci_registry.host}/cli/{uuid.uuid4().hex[:8]}:v1"
    first = run("push", "tiny", target, "--json")
    assert first.code == 0, first.err
    pushed = first.json()
    assert pushed["uploaded"] and not pushed["skipped"]
    second = run("push", "tiny", target)
    assert second.code == 0 and "0 uploaded (0 B), 0 mounted, 8 already there" in second.out

    removed = run("rm", "tiny", "-y")
    assert removed.code == 0 and "Removed tiny" in removed.out
    pulled = run("pull", f"oci://{target}", "--name", "tiny", "--json")
    assert pulled.code == 0, pulled.err
    assert sorted(pulled.json()["downloaded"]) == sorted(pushed["uploaded"])
    listed = {r["slug"]: r for r in run("list", "--json").json()}
    assert listed["tiny"]["source"] == "store"

    missing = run("pull", f"oci://{oci_registry.host}/cli/nothing-here:v1")
    assert missing.code == 3 and "not found" in missing.err and "Traceback" not in missing.err


def test_verify_flags_damage_the_model_refuses_to_load_and_a_pull_repairs_it(
    run: Run, tiny: str, oci_registry: RegistryServer, registry: Registry, settings: Settings
) -> None:
    target = f"{oci_registry.host}/cli/{uuid.uuid4().hex[:8]}:v1"
    assert run("push", "tiny", target).code == 0
    layout = catalog.open_store(settings)
    manifest, _ = layout.manifest(parse_name("tiny"))
    weights = next(d for d in manifest.layers if d.media_type == WEIGHTS)
    blob = layout.blobs.path(weights.digest)
    blob.chmod(0o644)
    damaged = bytearray(blob.read_bytes())
    damaged[1000] ^= 0x01  # one flipped bit
    blob.write_bytes(bytes(damaged))

    checked = run("store", "verify")
    assert checked.code == 5
    assert "DAMAGED" in checked.out and "model.safetensors" in checked.out
    assert "1 of 1 store model(s) have damaged or missing blobs" in checked.err
    record = registry.get("tiny")
    assert record is not None and record.extra["store_damaged"] == ["model.safetensors"]
    assert not layout.blobs.has(weights.digest)  # moved aside: nothing serves it
    with pytest.raises(Exception):  # noqa: B017 - mlx-lm's own error for a missing weight file
        mlxlm.load(record.cache_path)

    dry = run("prune", "--dry-run", "--json").json()
    assert dry["freed_bytes"] == weights.size and dry["leftovers"][0]["path"].endswith("-0")
    # `tiny` was made by `cp`, not pulled from `target`: taking its name needs --force.
    assert run("pull", target, "--name", "tiny").code == 4
    pulled = run("pull", target, "--name", "tiny", "--force", "--json")
    assert pulled.code == 0 and pulled.json()["downloaded"] == [weights.digest]
    again = run("store", "verify", "tiny", "--json")
    assert again.code == 0 and again.json()["ok"]
    record = registry.get("tiny")
    assert record is not None and "store_damaged" not in record.extra
    pruned = run("prune")
    assert pruned.code == 0 and "Freed 1.0 MB" in pruned.out


def test_create_show_and_a_bad_spec_line(run: Run, tiny: str, tmp_path: Path) -> None:
    spec = tmp_path / "ModelSpec"
    spec.write_text('FROM tiny\nSYSTEM """Short answers."""\nPARSER reasoning think\n')
    created = run("create", "terse", "-f", str(spec), "--json")
    assert created.code == 0, created.err
    assert created.json()["new_blobs"] == 3  # system.txt, ModelSpec, config
    shown = run("show", "terse", "--modelfile")
    assert shown.out == "FROM tiny\nPARSER reasoning think\nSYSTEM Short answers.\n"

    spec.write_text("FROM tiny\n\n\n\n\n\nPARAMETR temperature 0.2\n")
    broken = run("create", "broken", "-f", str(spec))
    assert broken.code == 2
    assert f"error: {spec}:7: unknown instruction 'PARAMETR'" in broken.err
    assert "did you mean PARAMETER?" in broken.err and "Traceback" not in broken.err


def test_rm_of_a_tag_keeps_blobs_another_tag_uses(run: Run, tiny: str) -> None:
    assert run("cp", "tiny", "tiny:backup").code == 0
    plan = run("rm", "tiny", "--dry-run", "--json").json()
    assert plan["freed_bytes"] == 0 and len(plan["kept"]) == 8
    assert plan["notes"] == ["8 blob(s) stay: other tags use them"]
    assert run("rm", "tiny", "-y").code == 0
    assert run("show", "tiny:backup", "--json").json()["source"] == "store"


def test_login_logout(run: Run, oci_registry_htpasswd: RegistryServer, settings: Settings) -> None:
    host = oci_registry_htpasswd.host
    wrong = run("login", host, "-u", REGISTRY_USER, "--password-stdin", input="nope\n")
    assert wrong.code == 5 and f"rejected the credentials of '{REGISTRY_USER}'" in wrong.err
    right = run("login", host, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD)
    assert right.code == 0 and f"Login succeeded for {host}" in right.out
    saved = json.loads((settings.home / "auth.json").read_text())
    assert list(saved["auths"]) == [host]
    assert (settings.home / "auth.json").stat().st_mode & 0o777 == 0o600
    assert run("logout", host).out.strip() == f"Logged out of {host}"
    assert run("logout", host).out.strip() == f"Not logged in to {host}"
    # -p works, but says where the password just went and what to use instead.
    argv = run("login", host, "-u", REGISTRY_USER, "-p", REGISTRY_PASSWORD)
    assert argv.code == 0 and "warning:" in argv.err
    assert "shell history" in argv.err and "--password-stdin" in argv.err
    assert "warning" not in right.err


def test_prune_untags_what_the_registry_does_not_know(
    run: Run, tiny: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    layout = catalog.open_store(settings)
    spec = tmp_path / "ModelSpec"
    spec.write_text("FROM tiny\nLICENSE ghost license\n")
    assert run("create", "ghost", "-f", str(spec)).code == 0
    # As after a crash between tagging and registering: a tag no registry row names.
    registry.remove("ghost")
    # A young one may be a running pull's, between its tag and its row: kept.
    assert run("prune", "--dry-run", "--json").json()["unregistered_tags"] == []
    tag_file = layout.tags.path(parse_name("ghost"))
    an_hour_ago = time.time() - 3600
    os.utime(tag_file, (an_hour_ago, an_hour_ago))
    dry = run("prune", "--dry-run", "--json").json()
    assert dry["unregistered_tags"] == ["ghost:latest"]
    assert len(dry["blobs"]) == 3  # its LICENSE, ModelSpec and config blobs; tiny's stay
    assert layout.tags.read(parse_name("ghost")) is not None  # dry run: nothing changed
    pruned = run("prune")
    assert pruned.code == 0 and "untagged  ghost:latest (no registry entry)" in pruned.out
    assert layout.tags.names() == [parse_name("tiny")]
    assert run("store", "verify", "--json").json()["ok"]
