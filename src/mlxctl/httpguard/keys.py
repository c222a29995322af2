"""The API key: checking it on a request, and handing it to a process through a file.

A key never goes on a command line (other users can read argv) or in a log. The
daemon writes it with `write_key_file` (mode 0600 from the moment the file
exists) and passes the path; `mlxctl worker --api-key-file` reads it back with
`read_key_file`, which refuses a file that group or others can read.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlxctl.errors import InvalidInput

__all__ = ["authorized", "read_key_file", "write_key_file"]


def authorized(headers: Mapping[str, str], key: str) -> bool:
    """`Authorization: Bearer <key>` or `x-api-key: <key>`, compared in constant time."""
    given = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def write_key_file(directory: Path, key: str) -> Path:
    """Write `key` to a new file in `directory` (created 0700 if missing), mode 0600.

    The file is created with O_EXCL under a random name, so nobody can read it or
    swap it in between; the caller deletes it when the reader no longer needs it.
    """
    if not key:
        raise InvalidInput("refusing to write an empty API key")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="key-", dir=directory)  # 0600 from creation
    try:
        os.write(fd, key.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def read_key_file(path: Path) -> str:
    """The key in `path`; refused when the file is missing, empty, or readable by others."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise InvalidInput(f"cannot read the API key file {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"the API key file {path} is not a regular file")
        if mode & 0o077:
            raise InvalidInput(
                f"refusing the API key file {path}: group or others may read it "
                f"(mode {stat.S_IMODE(mode):04o})",
                hint=f"chmod 600 {path}",
            )
        key = file.read(64 * 1024).decode("utf-8", errors="strict").strip()
    if not key:
        raise InvalidInput(f"the API key file {path} is empty")
    return key
