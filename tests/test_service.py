"""`mlxctl service install` writes a launchd agent or a systemd user unit (never runs them)."""

from __future__ import annotations

import os
import plistlib
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlxctl.cli.service import service
from mlxctl.errors import InvalidInput
from mlxctl.service import ServicePlan, install, plan_service, service_env
from mlxctl.settings import Settings

EXE = Path("/opt/my tools/bin/mlxctl")


def plan_for(platform: str, home: Path, env: dict[str, str] | None = None) -> ServicePlan:
    env = env or {"MLXCTL_HOME": str(home / ".mlxctl")}
    return plan_service(platform, home, EXE, env, home / ".mlxctl" / "logs")


def test_launchd_plist(tmp_path: Path) -> None:
    env = {"MLXCTL_HOME": str(tmp_path / ".mlxctl"), "MLXCTL_HOST": "0.0.0.0:11500"}
    plan = plan_for("darwin", tmp_path, env)
    assert plan.path == tmp_path / "Library/LaunchAgents/dev.mlxctl.serve.plist"
    plist = plistlib.loads(plan.text.encode())
    assert plist["Label"] == "dev.mlxctl.serve"
    assert plist["ProgramArguments"] == [str(EXE), "serve"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] is True
    # launchd never rotates its stderr file: the daemon writes its own rotated log.
    log_file = str(tmp_path / ".mlxctl/logs/serve.log")
    assert plist["EnvironmentVariables"] == {**env, "MLXCTL_LOG_FILE": log_file}
    assert plist["StandardOutPath"] == str(tmp_path / ".mlxctl/logs/serve.out.log")
    assert plist["StandardErrorPath"] == str(tmp_path / ".mlxctl/logs/serve.err.log")
    assert plan.enable.startswith("launchctl bootstrap gui/$(id -u) ")


def test_systemd_unit(tmp_path: Path) -> None:
    env = {"MLXCTL_HOME": str(tmp_path / "h"), "MLXCTL_API_KEY": 'se"cret%'}
    plan = plan_for("linux", tmp_path, env)
    assert plan.path == tmp_path / ".config/systemd/user/mlxctl.service"
    lines = plan.text.splitlines()
    assert f"ExecStart={EXE} serve" in lines
    assert "Restart=on-failure" in lines
    assert f'Environment="MLXCTL_HOME={tmp_path / "h"}"' in lines
    assert 'Environment="MLXCTL_API_KEY=se\\"cret%%"' in lines
    assert "WantedBy=default.target" in lines
    assert "systemctl --user enable --now mlxctl.service" in plan.enable


def test_other_platforms_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        plan_for("win32", tmp_path)


def test_the_env_carries_home_and_the_set_settings(isolated_home: Path) -> None:
    env = service_env(Settings.from_env(), {"MLXCTL_HOST": "h:1", "HF_HOME": "", "PATH": "/x"})
    assert env == {"MLXCTL_HOME": str(isolated_home), "MLXCTL_HOST": "h:1"}


@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_install_writes_the_file_for_its_owner_only(tmp_path: Path, platform: str) -> None:
    plan = plan_for(platform, tmp_path)
    install(plan)
    assert plan.path.read_text() == plan.text
    assert stat.S_IMODE(plan.path.stat().st_mode) == 0o600


_SEEN_MODES: dict[str, list[int]] = {}


def _record_modes(event: str, args: tuple[object, ...]) -> None:
    """Audit hook: the mode of every file under a watched folder when it is written to,
    chmod'ed or renamed (before the call happens)."""
    if event not in ("os.chmod", "os.rename", "open") or not args:
        return
    path = str(args[0])
    for folder, modes in _SEEN_MODES.items():
        if path.startswith(folder) and os.path.isfile(path):
            modes.append(stat.S_IMODE(os.stat(path).st_mode))


sys.addaudithook(_record_modes)


def test_the_unit_is_never_readable_by_others_not_even_for_a_moment(tmp_path: Path) -> None:
    plan = plan_for("linux", tmp_path)
    modes = _SEEN_MODES.setdefault(str(plan.path.parent), [])
    old = os.umask(0o022)
    try:
        install(plan)
    finally:
        os.umask(old)
        del _SEEN_MODES[str(plan.path.parent)]
    assert modes and all(mode == 0o600 for mode in modes), [oct(m) for m in modes]
    assert stat.S_IMODE(plan.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("platform", "relative"),
    [("darwin", "Library/LaunchAgents/dev.mlxctl.serve.plist"),
     ("linux", ".config/systemd/user/mlxctl.service")],
)  # fmt: skip
def test_the_command_writes_into_home_and_prints_the_enable_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str, relative: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("sys.platform", platform)
    printed = CliRunner().invoke(service, ["install", "--print"], catch_exceptions=False)
    assert printed.exit_code == 0
    assert not (tmp_path / relative).exists()
    assert "serve" in printed.output
    result = CliRunner().invoke(service, ["install"], catch_exceptions=False)
    assert result.exit_code == 0
    written = (tmp_path / relative).read_text()
    assert written == printed.output
    assert "serve" in written and "mlxctl" in written
    assert ("launchctl" if platform == "darwin" else "systemctl --user") in result.output
