"""The launcher in front of every child: rotation while running, the last lines kept,
and a group that dies with its daemon, grandchildren included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlxctl.supervision.exitwatch import running
from mlxctl.supervision.launch import Launch

# Prints numbered 100-byte lines as fast as it can, then sleeps.
CHATTY = textwrap.dedent(
    """
    import sys, time
    for i in range(int(sys.argv[1])):
        print(f"{i:08d} " + "x" * 90, flush=True)
    print("done", flush=True)
    time.sleep(60)
    """
)


def launch(
    tmp_path: Path, command: list[str], parent: int | None = None
) -> subprocess.Popen[bytes]:
    log = tmp_path / "child.log"
    argv = Launch(str(log), 10_000, 3, parent, command).argv(sys.executable)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)


def wait_for(check: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_log_rotates_while_the_child_runs(tmp_path: Path) -> None:
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY)
    child = launch(tmp_path, [sys.executable, str(script), "1000"])  # 100 kB, 10 kB files
    log = tmp_path / "child.log"
    try:
        wait_for(lambda: "done" in log.read_text())
        assert child.poll() is None  # still running: rotated while it runs
        sizes = [p.stat().st_size for p in (log, *(tmp_path / f"child.log.{i}" for i in (1, 2, 3)))]
        assert all(0 < size <= 10_000 for size in sizes)
        assert not (tmp_path / "child.log.4").exists()  # three backups, no more
        # Nothing lost inside the window kept: the newest backup ends where the log begins.
        last_backup = (tmp_path / "child.log.1").read_text().splitlines()[-1]
        first = log.read_text().splitlines()[0]
        assert int(first[:8]) == int(last_backup[:8]) + 1
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_the_pid_is_the_commands_own_and_a_stop_keeps_its_last_lines(tmp_path: Path) -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n    print('last words', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('up', flush=True)\ntime.sleep(60)\n"
    )
    child = launch(tmp_path, [sys.executable, "-c", code])
    log = tmp_path / "child.log"
    wait_for(lambda: "up" in log.read_text())
    with open(f"/proc/{child.pid}/cmdline", "rb") as f:
        assert b"-c" in f.read().split(b"\0")  # exec'd in place: the pid is the command's
    os.killpg(child.pid, signal.SIGTERM)  # the pump ignores it and drains the pipe
    assert child.wait(10) == 0
    wait_for(lambda: "last words" in log.read_text())


def test_a_command_that_cannot_run_says_so_in_its_log(tmp_path: Path) -> None:
    child = launch(tmp_path, ["/nonexistent/server", "--port", "1"])
    assert child.wait(10) == 127
    wait_for(lambda: "cannot run /nonexistent/server" in (tmp_path / "child.log").read_text())


def test_a_tied_group_dies_with_its_daemon_grandchildren_too(tmp_path: Path) -> None:
    # A "daemon" launches an external-like server that starts a helper of its own.
    pids = tmp_path / "pids"
    server = (
        "import os, subprocess, sys, time\n"
        "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{helper.pid}}')\n"
        "time.sleep(60)\n"
    )
    daemon_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from mlxctl.supervision.launch import Launch
        command = [sys.executable, "-c", {server!r}]
        log = {str(tmp_path / "s.log")!r}
        argv = Launch(log, 10**6, 1, __import__("os").getpid(), command).argv(sys.executable)
        subprocess.Popen(argv, start_new_session=True)
        time.sleep(60)
        """
    )
    daemon = subprocess.Popen([sys.executable, "-c", daemon_code])
    try:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
        server_pid, helper_pid = map(int, pids.read_text().split())
        assert running(server_pid) and running(helper_pid)
    finally:
        daemon.kill()
        daemon.wait()
    wait_for(lambda: not running(server_pid) and not running(helper_pid), timeout=5)


def test_an_untied_group_outlives_its_daemon_and_keeps_rotating(tmp_path: Path) -> None:
    # A slot worker: no parent. Its log keeps rotating after the daemon is gone.
    script = tmp_path / "ticker.py"
    script.write_text(
        "import time\nfor i in range(10**6):\n    print(f'{i:08d} ' + 'y' * 90, flush=True)\n"
        "    time.sleep(0.001)\n"
    )
    daemon_code = textwrap.dedent(
        f"""
        import subprocess, sys
        from mlxctl.supervision.launch import Launch
        log = {str(tmp_path / "child.log")!r}
        argv = Launch(log, 10_000, 2, None, [sys.executable, {str(script)!r}]).argv(sys.executable)
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(subprocess.Popen(argv, start_new_session=True, **quiet).pid, flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", daemon_code], capture_output=True, text=True, check=True, timeout=30
    )
    child = int(result.stdout)
    try:
        backup = tmp_path / "child.log.2"
        wait_for(lambda: backup.exists())
        first = backup.stat().st_mtime_ns
        wait_for(lambda: backup.stat().st_mtime_ns != first)  # still rotating
        assert running(child)
        assert not (tmp_path / "child.log.3").exists()
    finally:
        os.killpg(child, signal.SIGKILL)
