"""The API key on requests, and in files handed to workers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlxctl.errors import InvalidInput
from mlxctl.httpguard import authorized, read_key_file, write_key_file


def test_bearer_or_x_api_key() -> None:
    assert authorized({"authorization": "Bearer k3y"}, "k3y")
    assert authorized({"authorization": "bearer  k3y "}, "k3y")
    assert authorized({"x-api-key": "k3y"}, "k3y")
    assert not authorized({"authorization": "Bearer nope"}, "k3y")
    assert not authorized({"authorization": "Basic k3y"}, "k3y")
    assert not authorized({}, "k3y")


def test_write_key_file_is_private_from_creation(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "keys"
    path = write_key_file(folder, "s3cret")
    assert path.parent == folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert read_key_file(path) == "s3cret"
    # Each call gets its own file: two workers never share (or race on) one.
    assert write_key_file(folder, "s3cret") != path


def test_read_key_file_refuses_files_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("s3cret\n")
    os.chmod(path, 0o644)
    with pytest.raises(InvalidInput) as caught:
        read_key_file(path)
    assert "group or others may read it (mode 0644)" in caught.value.message
    assert caught.value.hint == f"chmod 600 {path}"
    os.chmod(path, 0o600)
    assert read_key_file(path) == "s3cret"


def test_read_key_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the API key file"):
        read_key_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    with pytest.raises(InvalidInput, match="is empty"):
        read_key_file(empty)
    with pytest.raises(InvalidInput, match="empty API key"):
        write_key_file(tmp_path, "")
