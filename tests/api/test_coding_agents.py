"""The real coding agents from npm against a real `mlxctl serve` on the tiny factory model.

Claude Code (`claude -p`) speaks Anthropic Messages with everything it sends by default
(beta headers, cache_control, adaptive thinking, context_management, output_config, its
own model name, mapped through MLXCTL_MODEL_MAP); Codex (`codex exec`) speaks the
Responses API through a custom provider. Both come from npm into `.cache/npm` (the test
command installs them; this module does too when they are missing). The tiny model's
context is 4096 tokens, so each agent is told to send a short system prompt and few tools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Daemon
from tests.api.dialect_daemon import module_daemon

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / ".cache" / "npm"
# The versions these tests were written against (scripts/test.sh installs the same).
PACKAGES = ("@anthropic-ai/claude-code@2.1.332", "@openai/codex@0.171.0")


@pytest.fixture(scope="module")
def agents() -> Path:
    """The folder holding the `claude` and `codex` commands, installed when missing."""
    bin_dir = NPM_DIR / "node_modules" / ".bin"
    if all((bin_dir / name).exists() for name in ("claude", "codex")):
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: Claude Code and Codex come from npm (apt install npm)")
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR), *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return bin_dir


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {"MLXCTL_MODEL_MAP": "claude-*=q,gpt-*=q"}
    root = tmp_path_factory.mktemp("agents")
    # The random model would ramble until max_tokens, which Claude Code reports as an error:
    # the test hook forces a short answer (then EOS) through the real engine instead.
    options = {"num_predict": 16, "mlxctl_test_force": "Hi there."}
    with module_daemon(root, env, options=options) as running:
        yield running


def _env(home: Path, **more: str) -> dict[str, str]:
    keep = ("PATH", "LANG", "TERM")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "HOME": str(home), **more}


def _answered(daemon: Daemon, path: str) -> list[dict[str, object]]:
    return [
        line
        for line in daemon.logs()
        if line.get("event") == "request" and line.get("path") == path
    ]


def test_claude_code_answers(agents: Path, daemon: Daemon, tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        ANTHROPIC_BASE_URL=daemon.url,
        ANTHROPIC_API_KEY="unused",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
    )
    # Its own system prompt and all its tools come to ~37k tokens: more than the tiny
    # model's 4096, so the system prompt is replaced and two tools kept.
    command = [str(agents / "claude"), "-p", "say hi", "--system-prompt", "Answer briefly."]
    done = subprocess.run(
        [*command, "--tools", "Read,Bash"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "Hi there.", done.stderr
    (request,) = _answered(daemon, "/v1/messages")
    # Claude Code named one of its own models: MLXCTL_MODEL_MAP sent it to `q`
    assert request["status"] == 200 and request["model"] == "q"


def test_codex_answers_through_the_responses_api(
    agents: Path, daemon: Daemon, tmp_path: Path
) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    (tmp_path / "instructions.md").write_text("Answer briefly.\n")
    (home / "config.toml").write_text(
        f"""model = "q"
model_provider = "mlxctl"
model_instructions_file = "{tmp_path / "instructions.md"}"
model_context_window = 4096
web_search = "disabled"
[agents]
enabled = false
[features]
goals = false
apps = false
unified_exec = false
collaboration_modes = false
[model_providers.mlxctl]
name = "mlxctl"
base_url = "{daemon.url}/v1"
wire_api = "responses"
"""
    )
    done = subprocess.run(
        [str(agents / "codex"), "exec", "--skip-git-repo-check", "say hi"],
        env=_env(tmp_path, CODEX_HOME=str(home)),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hi there." in done.stdout, done.stderr
    requests = _answered(daemon, "/v1/responses")
    assert requests and all(r["status"] == 200 and r["model"] == "q" for r in requests)
