"""The BLAS preload: chosen per setting, applied once, and numerically the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlxctl.engine.blas import MARKER, find_blas, preload_env

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux")


@linux_only
def test_setting_picks_the_library(tmp_path: Path) -> None:
    lib = tmp_path / "libopenblas.so.0"
    lib.write_bytes(b"")
    assert find_blas("auto", [tmp_path / "missing.so", lib]) == lib
    assert find_blas("off", [lib]) is None
    assert find_blas(str(lib)) == lib
    assert find_blas(str(tmp_path / "nope.so")) is None


@linux_only
def test_preload_env_is_applied_once(tmp_path: Path) -> None:
    lib = tmp_path / "libopenblas.so.0"
    lib.write_bytes(b"")
    env = preload_env({"LD_PRELOAD": "/other.so"}, "auto", [lib])
    assert env is not None
    assert env["LD_PRELOAD"] == f"{lib} /other.so" and env[MARKER] == str(lib)
    assert preload_env(env, "auto", [lib]) is None
    off = preload_env({}, "off", [lib])
    assert off is not None and "LD_PRELOAD" not in off and off[MARKER] == "none"


PROBE = """
import json, mlx.core as mx
from mlxctl.engine.blas import loaded_blas
mx.random.seed(0)
a = mx.random.normal((64, 96)); b = mx.random.normal((96, 32))
print(json.dumps({"blas": loaded_blas(), "sum": (a @ b).sum().item()}))
"""


@linux_only
def test_openblas_really_loads_and_agrees() -> None:
    env = preload_env({"PATH": "/usr/bin"}, "auto")
    assert env is not None
    if env[MARKER] == "none":
        pytest.skip("no OpenBLAS on this machine (apt install libopenblas0-pthread)")

    def probe(environ: dict[str, str]) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True
        )
        result: dict[str, object] = json.loads(out.stdout)
        return result

    fast, reference = probe(env), probe({"PATH": "/usr/bin"})
    assert "openblas" in str(fast["blas"])
    assert "openblas" not in str(reference["blas"])
    assert fast["sum"] == pytest.approx(reference["sum"], rel=1e-4)
