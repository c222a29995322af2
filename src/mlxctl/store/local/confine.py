"""Which files a registered model may make mlxctl read: its own, never anyone else's.

A registry row names files besides its folder: a chat template override, a
LoRA adapter folder, the GGUF file inside its folder. Rows come from pulled
manifests, `registry set` and imported registry.json files, so every reader
(`/api/show`, `mlxctl show`, capabilities, the worker, `cp`, `show
--modelfile`) goes through these checks instead of joining paths itself:

- a template override or adapter must resolve (symlinks followed) inside the
  store: store models keep theirs in their own folder, `registry set` copies a
  template into `store/templates/` (`StoreLayout.keep_template`);
- a GGUF file name is a plain relative path inside the model's folder.

`MLXCTL_HOME/auth.json`, `~/.ssh` or a Docker config therefore never become a
template, however a row was made.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlxctl.errors import InvalidInput
from mlxctl.registry.record import ModelRecord
from mlxctl.store.content.manifest import check_title


def is_inside(path: Path, root: Path) -> bool:
    """`path`, with every symlink and `..` resolved, is `root` or under it."""
    real = Path(os.path.realpath(path))
    return real.is_relative_to(os.path.realpath(root))


def same_place(path: Path, other: Path) -> bool:
    """The two paths are one folder once symlinks and `..` are resolved."""
    return os.path.realpath(path) == os.path.realpath(other)


def in_store(path: str | Path, store_root: Path, what: str) -> Path:
    """`path` when it is absolute and resolves inside the store; else InvalidInput."""
    candidate = Path(path)
    if not candidate.is_absolute() or not is_inside(candidate, store_root):
        raise InvalidInput(
            f"{what} {str(path)!r} is outside the model store ({store_root})",
            hint="mlxctl reads templates and adapters only from the store: set a template "
            "with `mlxctl registry set MODEL --chat-template FILE` (it is copied there)",
        )
    return candidate


def template_override(record: ModelRecord, store_root: Path) -> Path | None:
    """The row's chat template override (None: the tokenizer's own); refused outside the store."""
    if not record.chat_template:
        return None
    return in_store(record.chat_template, store_root, f"chat template of '{record.slug}'")


def adapter_dir(record: ModelRecord, store_root: Path) -> Path | None:
    """The row's LoRA adapter folder (store models only); refused outside the store."""
    adapter = record.adapter_path
    if not adapter:
        return None
    if not isinstance(adapter, str):
        raise InvalidInput(f"model '{record.slug}': adapter_path {adapter!r} is not a path")
    return in_store(adapter, store_root, f"adapter of '{record.slug}'")


def gguf_file(record: ModelRecord) -> Path | None:
    """The GGUF file a row names in its folder (None when it names none).

    A plain relative name: an HF snapshot's files are symlinks into the repo's
    blobs, so the name is checked, not where its link leads.
    """
    name = record.extra.get("gguf_file")  # raw: a malformed value is refused, not ignored
    if record.format != "gguf" or name is None:
        return None
    return Path(record.cache_path) / check_title(name, f"GGUF file of '{record.slug}'")
