"""Model names (`name:tag`) and the tag files that point them at manifests.

`manifests/<name>/<tag>` holds the manifest's exact bytes, so its digest is
the sha256 of the file and a push sends the very bytes a pull received. Tag
files are replaced by write-temp-then-rename: a crash leaves the old manifest
or the new one, never a torn file.

A model's registry slug is its name for the `latest` tag and `name:tag`
otherwise, so `mlxctl show qwen` finds `qwen:latest`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mlxctl.errors import InvalidInput

DEFAULT_TAG = "latest"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_TAG = re.compile(r"^[a-z0-9_][a-z0-9._-]{0,62}$")


@dataclass(frozen=True, order=True)
class ModelName:
    name: str
    tag: str = DEFAULT_TAG

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def slug(self) -> str:
        return self.name if self.tag == DEFAULT_TAG else str(self)


def parse_name(text: str) -> ModelName:
    """`name` or `name:tag` → ModelName; raises InvalidInput with a usable suggestion."""
    raw = text.strip()
    name, _, tag = raw.partition(":")
    tag = tag or DEFAULT_TAG
    if not _NAME.match(name) or not _TAG.match(tag):
        suggestion = re.sub(r"[^a-z0-9._:-]+", "-", raw.lower()).strip("-.:_") or "model"
        raise InvalidInput(
            f"invalid model name {text!r}: use lowercase a-z, 0-9, '.', '_' or '-' "
            "(name up to 64 characters), then optionally ':tag'",
            hint=f"for example: {suggestion}",
        )
    return ModelName(name, tag)


class TagStore:
    """The `manifests/` folder: one file per `name/tag`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: ModelName) -> Path:
        return self.root / name.name / name.tag

    def read(self, name: ModelName) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: ModelName, manifest: bytes) -> None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{path.name}-{secrets.token_hex(4)}"
        try:
            with tmp.open("xb") as f:
                f.write(manifest)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, name: ModelName) -> bool:
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the last tag of a name takes the folder with it
        return True

    def names(self) -> list[ModelName]:
        found: list[ModelName] = []
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not _NAME.match(folder.name):
                continue
            for file in sorted(folder.iterdir()):
                if file.is_file() and _TAG.match(file.name):
                    found.append(ModelName(folder.name, file.name))
        return found

    def leftovers(self) -> list[Path]:
        """Temp files of tag writes a crash interrupted."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*/.tmp-*") if p.is_file())
