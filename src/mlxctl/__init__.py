"""mlxctl: a local-first LLM model manager and server on Apple's MLX."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlxctl")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
