"""Chat templates a client sends, rendered in a child process that may be killed.

Jinja's sandbox stops escapes, not exhaustion: nested `range` loops spin for
minutes and `'x' * 10**10` asks for 10 GB in one C call. Neither can be stopped
inside the worker's own process (a thread cannot be killed; a single allocation
is never interrupted). So a client's template (only accepted under
MLXCTL_ALLOW_CLIENT_TEMPLATES) renders in a small child process:

    TemplateSandbox.render ── JSON line ──▶ child (jinja2 only; address space capped)
                           ◀── JSON line ──  text, or the template's error

A render past its deadline gets the child killed (the next render starts a new
one); one that needs more memory than the cap fails inside the child; output
beyond `max_chars` is cut off while it is generated. The worker stays up either way.

`sandbox_environment()` is the Jinja environment shaped like transformers' (same
sandbox, filters and globals); the GGUF tokenizer renders its embedded templates
with it too. Run as `python -m mlxctl.engine.templatebox` this module is the child.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import IO, Any

from mlxctl.errors import InvalidInput, Unavailable

__all__ = ["TemplateSandbox", "sandbox_environment"]

# Address space the child may add to what it holds after importing jinja2.
CHILD_MEMORY_BYTES = 512 * 1024 * 1024


def sandbox_environment() -> Any:
    """A sandboxed Jinja environment with the filters and globals HF chat templates use."""
    import jinja2
    from jinja2 import ext, nodes
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(ext.Extension):
        # transformers' `{% generation %}` tag marks assistant text; rendering ignores it.
        tags = {"generation"}  # noqa: RUF012 - Jinja reads the class attribute

        def parse(self, parser: jinja2.parser.Parser) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_body")
            return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[ext.loopcontrols, Generation]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


class TemplateSandbox:
    """Renders client templates in one child process, one render at a time.

    `render` blocks (call it from a worker thread); it raises InvalidInput for a
    template that fails, overruns its time or output, or exhausts its memory, and
    Unavailable when another render holds the child past this one's deadline.
    """

    def __init__(self, *, timeout: float, max_chars: int) -> None:
        self.timeout = timeout
        self.max_chars = max_chars
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None

    def render(self, template: str, variables: dict[str, Any]) -> str:
        deadline = time.monotonic() + self.timeout
        if not self._lock.acquire(timeout=self.timeout):
            raise Unavailable(
                "Another client template is rendering; retry in a moment.", retry_after=1
            )
        try:
            return self._render(template, variables, deadline)
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _render(self, template: str, variables: dict[str, Any], deadline: float) -> str:
        child = self._start()
        assert child.stdin is not None and child.stdout is not None
        request = {"template": template, "variables": variables, "max_chars": self.max_chars}
        try:
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.flush()
            line = _read_line(child.stdout, deadline)
        except (OSError, TimeoutError) as e:
            self._stop()
            if isinstance(e, TimeoutError):
                raise InvalidInput(
                    f"The chat template did not render within {self.timeout:g} s "
                    "(MLXCTL_TEMPLATE_TIMEOUT)."
                ) from None
            raise InvalidInput("The chat template's renderer failed; try again.") from None
        if not line:  # the child died: out of memory, or killed from outside
            self._stop()
            raise InvalidInput("The chat template used more memory than a template may use.")
        answer = json.loads(line)
        if "error" in answer:
            raise InvalidInput(f"The chat template could not render: {answer['error']}")
        return str(answer["text"])

    def _start(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            # -I: no cwd or user site on sys.path; only what the child needs in its env.
            env = {k: v for k in ("PATH", "LANG", "LC_ALL") if (v := os.environ.get(k))}
            self._child = subprocess.Popen(
                [sys.executable, "-I", "-m", "mlxctl.engine.templatebox"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        return self._child

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _read_line(pipe: IO[bytes], deadline: float) -> bytes:
    """One line from the child, or TimeoutError at the deadline."""
    chunks: list[bytes] = []
    fd = pipe.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


# The child ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _compiled(source: str) -> Any:
    return sandbox_environment().from_string(source)


def _render_one(request: dict[str, Any]) -> dict[str, str]:
    max_chars = int(request["max_chars"])
    try:
        pieces: list[str] = []
        size = 0
        for piece in _compiled(str(request["template"])).generate(**request["variables"]):
            size += len(piece)
            if size > max_chars:
                return {"error": f"its output is longer than {max_chars} characters"}
            pieces.append(piece)
        return {"text": "".join(pieces)}
    except MemoryError:
        return {"error": "it used more memory than a template may use"}
    except RecursionError:
        return {"error": "it recursed too deeply"}
    except Exception as e:  # Jinja's own errors carry the useful text
        return {"error": f"{type(e).__name__}: {e}"}


def _cap_memory() -> None:
    try:
        import resource

        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = used + CHILD_MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):
        pass  # no /proc (macOS): the deadline still bounds the child


def main() -> None:
    sandbox_environment()  # import jinja2 before the address space is capped
    _cap_memory()
    for line in sys.stdin.buffer:
        answer = _render_one(json.loads(line))
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
