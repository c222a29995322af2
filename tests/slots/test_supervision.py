"""Slot workers under the one supervisor: external servers on slots, adoption by proof,
the daemon's worker settings and key, MLX servers stopped on unload, writes off the loop."""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from mlxctl.supervision.exitwatch import running
from tests.cli.runner import Run
from tests.slots.conftest import Serve, add_model, base_port, slots, wait_for

# An OpenAI-ish server that knows nothing of mlxctl (as llama-server would be): it
# answers /health and /v1/models, and starts a helper process of its own.
EXTERNAL = textwrap.dedent(
    """
    import http.server, json, subprocess, sys
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "data": [{"id": sys.argv[2]}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            print("request", args[1], flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def group_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pid]


def test_an_external_server_on_a_slot_is_supervised_and_adopted(
    serve: Serve, slot_env: dict[str, str], run: Run, tmp_path: Path
) -> None:
    base = base_port(slot_env)
    script = tmp_path / "server.py"
    script.write_text(EXTERNAL)
    command = f"{shlex.quote(sys.executable)} {script} {{port}} {{model}}"
    add_model("ext", tmp_path / "ext", extra={"command": command})
    env = {"MLXCTL_WORKER_LIVENESS_INTERVAL": "0.3", "MLXCTL_WORKER_LIVENESS_TIMEOUT": "2"}
    daemon = serve(**env)
    loaded = run("load", "ext", "gamma")
    assert loaded.code == 0, loaded.err
    live = slots(daemon)[base + 2]["live"]
    assert live["healthy"] is True and live["model"] == "ext"
    pid = live["pid"]
    assert len(group_of(pid)) >= 3  # the server, its helper, the log pump
    log = Path(os.environ["MLXCTL_HOME"]) / "logs" / f"slot-{base + 2}.log"
    assert "request" in log.read_text()  # the server's own output goes to the slot log

    # A new daemon proves it is ours (pid file + listener in its group) and adopts it.
    daemon.stop(signal.SIGKILL)
    again = serve(**env)
    row = wait_for(lambda: (r := slots(again)[base + 2])["live"] and r)
    assert row["live"]["pid"] == pid and row["drift"] == []
    assert run("reconcile", "--json").json()["actions"] == []

    # Adopted means watched: a stuck server is killed by the new daemon's liveness check.
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: not running(pid), timeout=15)
    assert "dead worker" in wait_for(lambda: slots(again)[base + 2]["drift"])
    # Reconcile starts it again, and unload stops it with its whole group.
    assert run("reconcile", "--json").json()["actions"][0]["ok"] is True
    pid = slots(again)[base + 2]["live"]["pid"]
    members = group_of(pid)
    unloaded = run("unload", "gamma")
    assert unloaded.code == 0 and f"stopped pid {pid}" in unloaded.out
    wait_for(lambda: not any(running(p) for p in members), timeout=10)


def test_slot_workers_get_the_daemon_settings_and_key(
    serve: Serve,
    slot_env: dict[str, str],
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = base_port(slot_env)
    add_model("one", tmp_path / "one")
    env = {"MLXCTL_WORKER_MAX_BATCH": "3", "MLXCTL_WORKER_MAX_QUEUE": "5"}
    env.update(MLXCTL_WORKER_PROMPT_CACHE_BYTES="64MiB", MLXCTL_API_KEY="k3y")
    daemon = serve(**env)
    monkeypatch.setenv("MLXCTL_API_KEY", "k3y")
    assert run("load", "one", "alpha").code == 0
    pid = slots(daemon)[base]["live"]["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [word.decode() for word in f.read().split(b"\0")]
    assert argv[argv.index("--max-batch") + 1] == "3"
    assert argv[argv.index("--max-queue") + 1] == "5"
    assert argv[argv.index("--prompt-cache-bytes") + 1] == "64MiB"
    assert "k3y" not in argv and "--api-key-file" in argv
    url = f"http://127.0.0.1:{base}/v1/chat/completions"
    body = {"model": "one", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.post(url, json=body).status_code == 401
    authorized = httpx.post(url, json=body, headers={"Authorization": "Bearer k3y"})
    assert authorized.status_code == 200
    assert slots(daemon)[base]["live"]["healthy"] is True


def test_unload_stops_mlx_servers_on_slot_ports_and_nothing_else(
    serve: Serve, slot_env: dict[str, str], run: Run, tmp_path: Path
) -> None:
    base = base_port(slot_env)
    daemon = serve()

    def mlx_server(port: int) -> subprocess.Popen[bytes]:
        # A hand-started worker: an MLX server mlxctl did not start.
        argv = [sys.executable, "-m", "mlxctl.supervision.fake", "stray", "--port", str(port)]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)

    strays = [mlx_server(base), mlx_server(base + 1)]
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(base + 2), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: all(slots(daemon)[p]["live"] for p in (base, base + 1, base + 2)))
        drift = slots(daemon)[base]["drift"]
        assert drift == []  # nothing is assigned there: not ours to judge
        unloaded = run("unload", str(base))
        assert unloaded.code == 0 and f"stopped pid {strays[0].pid}" in unloaded.out
        assert strays[0].wait(10) is not None
        result = run("unload-all", "--yes", "--json")
        assert result.code == 0, result.err
        stopped = {e["slot"]: e["stopped_pid"] for e in result.json()["unloaded"]}
        assert stopped == {base + 1: strays[1].pid}
        assert strays[1].wait(10) is not None
        assert other.poll() is None  # never another kind of process
    finally:
        for proc in (*strays, other):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_slot_registry_writes_do_not_block_the_daemon(
    serve: Serve, slot_env: dict[str, str], tmp_path: Path, isolated_home: Path
) -> None:
    base = base_port(slot_env)
    add_model("one", tmp_path / "one")
    daemon = serve(MLXCTL_DB_BUSY_TIMEOUT="30")
    client = daemon.client()
    assert client.post("/api/admin/slots/load", json={"model": "one", "slot": base}).is_success
    # Another process (a CLI, say) holds the registry's write lock for a while.
    holder = sqlite3.connect(isolated_home / "registry.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    result: dict[str, httpx.Response] = {}
    unload = threading.Thread(
        target=lambda: result.update(
            r=client.post("/api/admin/slots/unload", json={"slot": base}, timeout=60)
        )
    )
    unload.start()
    try:
        time.sleep(0.5)
        assert unload.is_alive()  # waiting for the lock...
        started = time.monotonic()
        health = httpx.get(daemon.url + "/health", timeout=5)
        assert health.status_code == 200  # ...while the daemon answers everyone else
        assert time.monotonic() - started < 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    unload.join(30)
    assert result["r"].status_code == 200 and result["r"].json()["unloaded"] == "one"
