"""mlxctl: a local-first LLM model manager and server on Apple's MLX."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Read on first use: every child's launcher imports this package and needs no metadata.
    if name != "__version__":
        raise AttributeError(f"module 'mlxctl' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("mlxctl")
    except PackageNotFoundError:  # running from a source tree without install
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
