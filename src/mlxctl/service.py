"""Start `mlxctl serve` at login: a launchd agent on macOS, a systemd user unit on Linux.

`plan_service(platform, home, settings)` is pure: it returns the file to write, its
text and the command that enables it; `install(plan)` writes the file. Nothing here
runs launchctl or systemctl — the user does, with the printed command.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from mlxctl.errors import InvalidInput
from mlxctl.settings import Settings

LABEL = "dev.mlxctl.serve"
UNIT = "mlxctl.service"
# Settings worth carrying into the service's environment when the user has set them.
CARRIED_ENV = ("MLXCTL_HOST", "MLXCTL_API_KEY", "HF_HUB_CACHE", "HF_HOME")


@dataclass(frozen=True)
class ServicePlan:
    path: Path
    text: str
    enable: str  # the shell command that starts it now and at every login


def mlxctl_executable() -> Path:
    """The absolute path of the `mlxctl` script of this installation."""
    beside = Path(sys.executable).parent / "mlxctl"
    if beside.exists():
        return beside.absolute()
    found = shutil.which("mlxctl")
    if found is None:
        raise InvalidInput(
            "cannot find the `mlxctl` executable",
            hint="install mlxctl (pip install -e .) so that `mlxctl` is on PATH",
        )
    return Path(found).absolute()


def service_env(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    carried = {"MLXCTL_HOME": str(settings.home)}
    carried.update({name: env[name] for name in CARRIED_ENV if env.get(name)})
    return carried


def plan_service(
    platform: str, home: Path, executable: Path, env: dict[str, str], logs_dir: Path
) -> ServicePlan:
    """The unit file for `platform` ('darwin' or 'linux') under the user's `home`."""
    if platform == "darwin":
        path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        # launchd never rotates StandardErrorPath: the daemon writes its own rotated file.
        env = {"MLXCTL_LOG_FILE": str(logs_dir / "serve.log"), **env}
        text = launchd_plist(executable, env, logs_dir)
        return ServicePlan(path, text, f"launchctl bootstrap gui/$(id -u) {shlex.quote(str(path))}")
    if platform.startswith("linux"):
        path = home / ".config" / "systemd" / "user" / UNIT
        text = systemd_unit(executable, env)
        return ServicePlan(
            path, text, f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
        )
    raise InvalidInput(f"no service manager support for platform {platform!r}")


def install(plan: ServicePlan) -> None:
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.path.with_name(f".{plan.path.name}.{secrets.token_hex(4)}.tmp")
    # The unit may carry MLXCTL_API_KEY: created 0600, so it is never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(plan.text)
        tmp.replace(plan.path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def launchd_plist(executable: Path, env: dict[str, str], logs_dir: Path) -> str:
    env_items = "".join(
        f"\n\t\t<key>{escape(k)}</key>\n\t\t<string>{escape(v)}</string>"
        for k, v in sorted(env.items())
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
\t<key>Label</key>
\t<string>{LABEL}</string>
\t<key>ProgramArguments</key>
\t<array>
\t\t<string>{escape(str(executable))}</string>
\t\t<string>serve</string>
\t</array>
\t<key>EnvironmentVariables</key>
\t<dict>{env_items}
\t</dict>
\t<key>RunAtLoad</key>
\t<true/>
\t<key>KeepAlive</key>
\t<true/>
\t<key>StandardOutPath</key>
\t<string>{escape(str(logs_dir / "serve.out.log"))}</string>
\t<key>StandardErrorPath</key>
\t<string>{escape(str(logs_dir / "serve.err.log"))}</string>
</dict>
</plist>
"""


def systemd_unit(executable: Path, env: dict[str, str]) -> str:
    # systemd quoting: the whole assignment in double quotes, with \ and " escaped.
    env_lines = "".join(
        f'Environment="{_systemd_escape(k)}={_systemd_escape(v)}"\n' for k, v in sorted(env.items())
    )
    return f"""[Unit]
Description=mlxctl model server
After=network.target

[Service]
Type=simple
ExecStart={_systemd_escape(str(executable))} serve
{env_lines}Restart=on-failure
RestartSec=5

[Install]
WantedBy=default.target
"""


def _systemd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
