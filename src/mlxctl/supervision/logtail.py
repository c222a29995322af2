"""A child's log file: the start header, and the line that says why it failed.

Every start appends `=== mlxctl <time> start: <argv>` before the child writes, so a
failure message can quote the latest run's last error line and name the file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import BinaryIO

HEADER = "=== mlxctl "
_ERROR_LINE = re.compile(r"(Error|Exception|error:|Traceback|Killed)")


def open_with_header(path: Path, argv: list[str]) -> BinaryIO:
    """The log opened for appending, with this start's header written; raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logfile = open(path, "ab")  # noqa: SIM115 - handed to the child, closed by the caller
    try:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        logfile.write(f"{HEADER}{stamp} start: {shlex.join(argv)}\n".encode())
        logfile.flush()
    except OSError:
        logfile.close()
        raise
    return logfile


def with_log(message: str, path: Path) -> str:
    """`message`, the latest run's error line when it adds something, and where the log is."""
    line = last_error_line(path)
    detail = f": {line}" if line and line not in message else ""
    return f"{message}{detail} (log: {path})"


def latest_run(path: Path, max_bytes: int = 8192) -> str | None:
    """The log's last `max_bytes`, from the latest start header on (None: unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    return tail.rsplit(HEADER, 1)[-1]


def last_error_line(path: Path, max_bytes: int = 8192) -> str | None:
    """The last line of the log that reads like an error (else the last line), trimmed."""
    tail = latest_run(path, max_bytes)
    if tail is None:
        return None
    lines = [line.strip() for line in tail.splitlines()[1:] if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and not line.startswith("Traceback"):
            return _trim(_json_message(line))
    return _trim(lines[-1]) if lines else None


def _json_message(line: str) -> str:
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return line
        if isinstance(data, dict):
            return str(data.get("message") or data.get("msg") or line)
    return line


def _trim(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
