"""The store folder (`MLXCTL_HOME/store`) and the rules that keep it consistent.

    blobs/sha256-<hex>           content, named by digest (see blobs.py)
    manifests/<name>/<tag>       the OCI manifest of each tagged model (see tags.py)
    models/sha256-<hex>/         a manifest's files under their own names: relative
                                 symlinks into blobs/, the folder mlx-lm loads
    templates/sha256-<hex>       chat templates `registry set` copied in (the only
                                 place a non-store model's template override may be)
    remotes.json                 which registry repositories hold which blobs
                                 (a hint for cross-repository mounts)

Order of writes, so that kill -9 at any point leaves a consistent store:
blobs first, then the tag file (temp + rename), then the model folder (built
in a temp folder, renamed into place). A tag never names a missing blob.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from mlxctl.errors import Conflict, InvalidInput, NotFound
from mlxctl.store.content.blobs import BlobStore, remove_tree
from mlxctl.store.content.manifest import Descriptor, Manifest, ModelConfig, check_title, digest_of
from mlxctl.store.content.tags import ModelName, TagStore

STORE_SOURCE = "store"  # ModelRecord.source of models kept in the store
MAX_TEMPLATE_BYTES = 1 << 20


class UnreadableTag(Conflict):
    """A tag whose manifest does not parse: its blobs may be in use, so none is garbage."""

    def __init__(self, problems: dict[ModelName, str], tags_dir: Path) -> None:
        first, why = next(iter(problems.items()))
        names = ", ".join(str(n) for n in problems)
        super().__init__(
            f"store tag {names} cannot be read ({why}); no blob was deleted, "
            "since that tag may still use them",
            hint=f"pull it again to rewrite the tag, or delete "
            f"{tags_dir / first.name / first.tag} by hand",
        )
        self.names = tuple(problems)


class StoreLayout:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root / "blobs")
        self.tags = TagStore(self.root / "manifests")
        self.models_dir = self.root / "models"
        self.templates = BlobStore(self.root / "templates")

    # Manifests and tags ----------------------------------------------------

    def manifest(self, name: ModelName) -> tuple[Manifest, str]:
        """The manifest a tag points at and its digest; NotFound names the next step."""
        data = self.tags.read(name)
        if data is None:
            raise NotFound(
                f"model '{name}' is not in the store",
                hint=f"create it with `mlxctl create {name} -f ModelSpec` or pull it",
            )
        return Manifest.from_bytes(data, where=f"manifest of '{name}'"), digest_of(data)

    def config(self, manifest: Manifest) -> ModelConfig:
        return ModelConfig.from_bytes(self.read_blob(manifest.config))

    def read_blob(self, descriptor: Descriptor) -> bytes:
        try:
            return self.blobs.path(descriptor.digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"blob {descriptor.digest} ({descriptor.title or 'config'}) is missing",
                hint="pull the model again, or run `mlxctl store verify` to see what is damaged",
            ) from None

    def put(self, name: ModelName, manifest: Manifest) -> str:
        """Point `name` at `manifest` (stored blobs only); returns the manifest digest."""
        missing = [d.digest for d in manifest.blobs() if not self.blobs.has(d.digest, d.size)]
        if missing:
            raise InvalidInput(f"cannot tag '{name}': {len(missing)} blob(s) not stored yet")
        return self.put_bytes(name, manifest.to_bytes())

    def put_bytes(self, name: ModelName, data: bytes) -> str:
        """Tag exact manifest bytes (as a registry served them)."""
        self.tags.write(name, data)
        return digest_of(data)

    def references(self) -> dict[str, set[ModelName]]:
        """Every blob a tag uses → the tags using it.

        Fails closed: a tag that cannot be read (damaged, edited, written by a
        newer mlxctl) raises `UnreadableTag`, so no caller takes its blobs for garbage.
        """
        used: dict[str, set[ModelName]] = {}
        problems: dict[ModelName, str] = {}
        for name in self.tags.names():
            try:
                manifest, _ = self.manifest(name)
            except (InvalidInput, NotFound) as e:
                if self.tags.read(name) is not None:  # removed meanwhile: not a problem
                    problems[name] = e.message
                continue
            for descriptor in manifest.blobs():
                used.setdefault(descriptor.digest, set()).add(name)
        if problems:
            raise UnreadableTag(problems, self.tags.root)
        return used

    def manifest_digests(self) -> dict[str, set[ModelName]]:
        digests: dict[str, set[ModelName]] = {}
        for name in self.tags.names():
            data = self.tags.read(name)
            if data is not None:
                digests.setdefault(digest_of(data), set()).add(name)
        return digests

    # Template overrides ------------------------------------------------------

    def keep_template(self, source: Path) -> Path:
        """A copy of the template file `source` in `templates/` (by content); its path.

        A registry row's template override is read only from the store, so a
        local edit copies the file in: later edits of `source` change nothing.
        """
        if not source.is_file():
            raise InvalidInput(f"chat template {source} is not a file")
        try:
            with source.open("rb") as f:
                data = f.read(MAX_TEMPLATE_BYTES + 1)
        except OSError as e:
            raise InvalidInput(f"cannot read chat template {source}: {e.strerror}") from None
        if len(data) > MAX_TEMPLATE_BYTES:
            raise InvalidInput(f"chat template {source} is over {MAX_TEMPLATE_BYTES >> 20} MiB")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"chat template {source} is not UTF-8 text") from None
        return self.templates.path(self.templates.write_bytes(data).digest)

    # Model folders ---------------------------------------------------------

    def model_dir(self, manifest_digest: str) -> Path:
        return self.models_dir / manifest_digest.replace(":", "-")

    def materialise(self, manifest: Manifest, manifest_digest: str) -> Path:
        """The folder of `manifest`'s files, made of links into blobs/ (built once).

        The folder is named by the manifest digest, so its contents never change:
        an existing folder whose links all resolve is reused as it is.
        """
        target = self.model_dir(manifest_digest)
        files = manifest.files()
        if target.is_dir() and all((target / t).exists() for t in files):
            return target
        self.models_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.models_dir / f".tmp-{secrets.token_hex(6)}"
        try:
            for title, descriptor in files.items():
                link = tmp / check_title(title)
                link.parent.mkdir(parents=True, exist_ok=True)
                blob = self.blobs.path(descriptor.digest)
                # Relative: the store can move as one folder (a new MLXCTL_HOME).
                link.symlink_to(os.path.relpath(blob, link.parent))
            tmp.mkdir(parents=True, exist_ok=True)
            if target.exists():
                remove_tree(target)  # an older, broken copy
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target.is_dir() and all((target / t).exists() for t in files)):
                    raise
                remove_tree(tmp)  # another process built the same folder first
        except BaseException:
            remove_tree(tmp)
            raise
        return target

    def model_dirs(self) -> list[Path]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p for p in self.models_dir.iterdir() if p.is_dir())

    # Who may delete blobs -------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) by pulls, imports and creates from first blob to tag.

        Garbage collection takes it exclusively, so it never deletes a blob that
        a running pull wrote but has not tagged yet.
        """
        with self._lock(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def collecting(self) -> Iterator[bool]:
        """Exclusive, without waiting: yields False while a writer is running."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as f:
            fcntl.flock(f.fileno(), mode)
            yield

    # Where blobs live remotely (for cross-repository mounts) ------------------

    @property
    def _remotes_path(self) -> Path:
        return self.root / "remotes.json"

    def remote_repos(self, host: str, digest: str) -> list[str]:
        """Repositories on `host` known to hold `digest` (most recent first)."""
        hosts = self._read_remotes().get(host, {})
        return [repo for repo, digests in hosts.items() if digest in digests][::-1]

    def remember_remote(self, host: str, repo: str, digests: list[str]) -> None:
        """Best effort: a lost update only costs a mount attempt later."""
        remotes = self._read_remotes()
        repos = remotes.setdefault(host, {})
        known = set(repos.pop(repo, [])) | set(digests)
        repos[repo] = sorted(known)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-remotes-{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(remotes, indent=1, sort_keys=False))
        os.replace(tmp, self._remotes_path)

    def _read_remotes(self) -> dict[str, dict[str, list[str]]]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self._remotes_path.read_text())
            if isinstance(data, dict):
                return data
        return {}
