"""The result of one in-process `mlxctl` run (see the `run` fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def ok(self) -> Result:
        """This result, asserted successful (its stderr shown when not)."""
        assert self.code == 0, self.err
        return self


Run = Callable[..., Result]
