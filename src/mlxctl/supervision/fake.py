"""A fake worker: the worker's HTTP contract with no model, for tests and benchmarks.

    python -m mlxctl.supervision.fake [--load-seconds S] [--tokens-per-second N]
        [--fail-load] [--rss-mb N] MODEL --host H --port P [--max-batch N --max-queue N]
        [--prompt-cache-entries N --prompt-cache-bytes S] [--api-key-file PATH]
        [--context N --preset NAME --chat-template F --tool-call-parser P --reasoning-parser P]

Speaks what the daemon relies on: `/health` (`loading` for S seconds, then `ok`,
or `failed` and exit 1 with `--fail-load`), `/v1/chat/completions` and
`/v1/completions` (JSON or SSE at N tokens/s, `usage`, 429 + Retry-After when
batch and queue are full), `/v1/models` and `/v1/worker/stats`; `/health` reports the
pid, `MLXCTL_WORKER_NONCE` and the `options` it was started with, and with
`--api-key-file` every other route needs `Authorization: Bearer <key>`. A request body
field `fake_crash_after` (tokens) makes the process SIGKILL itself mid-stream;
`fake_stall_after` (tokens) makes the request go silent from there while the process
keeps answering `/health`. A JSON answer echoes
the request's sampling fields (`fake_sampling`), so tests see the defaults it got.
Use it as `MLXCTL_WORKER_COMMAND="python -m mlxctl.supervision.fake --load-seconds 0.2"`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


class FakeState:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.in_flight = self.active = 0
        self.requests_total = self.prompt_total = self.generated_total = 0
        self.cancelled_total = 0
        self.ballast = bytearray(args.rss_mb << 20)  # resident memory to measure
        for i in range(0, len(self.ballast), 4096):
            self.ballast[i] = 1

    @property
    def status(self) -> str:
        if time.monotonic() - self.started < self.args.load_seconds:
            return "loading"
        return "failed" if self.args.fail_load else "ok"


def create_app(args: argparse.Namespace) -> ASGIApp:
    state = FakeState(args)
    model_id: str = args.model

    async def health(request: Request) -> Response:
        model = {"id": model_id, "path": f"/fake/{model_id}", "repo_id": None}
        body: dict[str, Any] = {"status": state.status, "model": model, "pid": os.getpid()}
        body["nonce"] = os.environ.get("MLXCTL_WORKER_NONCE")
        body["options"] = {name: getattr(args, name) for name in _OPTIONS}
        if state.status == "failed":
            body["error"] = "RuntimeError: fake load failure"
            # Logged as the real worker logs it: a poll that misses this answer (a loaded
            # machine) still finds the reason in the log once the process has gone.
            print(body["error"], file=sys.stderr, flush=True)
            asyncio.get_running_loop().call_later(0.05, os._exit, 1)
        return JSONResponse(body, status_code=503 if state.status == "failed" else 200)

    async def generate(request: Request) -> Response:
        if state.status != "ok":
            return _error(503, "The model is still loading.", "loading", {"Retry-After": "1"})
        body = json.loads(await request.body())
        if state.in_flight >= args.max_batch + args.max_queue:
            return _error(429, "The worker's batch and queue are full.", "queue_full")
        chat = request.url.path.endswith("/chat/completions")
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        crash_after = body.get("fake_crash_after")
        stall_after = body.get("fake_stall_after")
        prompt = json.dumps(body.get("messages") or body.get("prompt") or "")
        prompt_tokens = max(1, len(prompt) // 4)
        state.in_flight += 1
        state.requests_total += 1
        state.prompt_total += prompt_tokens
        ident = f"{'chatcmpl' if chat else 'cmpl'}-fake{state.requests_total}"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": max_tokens}
        usage["total_tokens"] = prompt_tokens + max_tokens
        if not body.get("stream"):
            try:
                if stall_after is not None:
                    await asyncio.Event().wait()
                await asyncio.sleep(max_tokens / args.tokens_per_second)
                state.generated_total += max_tokens
            finally:
                state.in_flight -= 1
            text = "".join(f"tok{i} " for i in range(max_tokens))
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            obj = "chat.completion" if chat else "text_completion"
            # The fingerprint names the model, so a test behind a gateway can tell who answered.
            fingerprint = f"fake-{model_id}"
            return JSONResponse(
                {
                    "id": ident,
                    "object": obj,
                    "model": model_id,
                    "system_fingerprint": fingerprint,
                    "choices": [choice],
                    "usage": usage,
                    "fake_sampling": {k: body[k] for k in _SAMPLING if k in body},
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            finished = False
            try:
                for i in range(max_tokens):
                    if crash_after is not None and i >= int(crash_after):
                        os.kill(os.getpid(), signal.SIGKILL)
                    if stall_after is not None and i >= int(stall_after):
                        await asyncio.Event().wait()
                    await asyncio.sleep(1 / args.tokens_per_second)
                    state.generated_total += 1
                    yield _chunk(ident, model_id, chat, f"tok{i} ", None)
                yield _chunk(ident, model_id, chat, "", "length")
                if include_usage:
                    yield _sse({"id": ident, "model": model_id, "choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
                finished = True
            finally:
                state.in_flight -= 1
                state.cancelled_total += 0 if finished else 1

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        card = {"id": model_id, "object": "model", "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [card]})

    async def stats(request: Request) -> Response:
        rss = len(state.ballast)
        return JSONResponse(
            {
                "queue_depth": max(0, state.in_flight - args.max_batch),
                "active": min(state.in_flight, args.max_batch),
                "requests_total": state.requests_total,
                "tokens_prompt_total": state.prompt_total,
                "tokens_generated_total": state.generated_total,
                "cancelled_total": state.cancelled_total,
                "prompt_cache": {"hits": state.requests_total // 2, "misses": 1},
                "memory": {"active": rss, "peak": rss, "cache": 0},
                "model": model_id,
            }
        )

    routes = [
        Route("/health", health),
        Route("/v1/chat/completions", generate, methods=["POST"]),
        Route("/v1/completions", generate, methods=["POST"]),
        Route("/v1/models", models),
        Route("/v1/worker/stats", stats),
    ]
    app = Starlette(routes=routes)
    if not args.api_key_file:
        return app
    expected = f"Bearer {Path(args.api_key_file).read_text().strip()}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        guarded_path = scope["type"] == "http" and scope["path"] != "/health"
        if guarded_path and dict(scope["headers"]).get(b"authorization") != expected:
            denied = _error(401, "Missing or wrong API key.", "invalid_api_key")
            return await denied(scope, receive, send)
        await app(scope, receive, send)

    return guarded


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _chunk(ident: str, model: str, chat: bool, text: str, finish: str | None) -> bytes:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text} if text else {}
    else:
        choice["text"] = text
    obj = "chat.completion.chunk" if chat else "text_completion"
    return _sse({"id": ident, "object": obj, "model": model, "choices": [choice]})


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    kind = {429: "rate_limit_error", 401: "authentication_error"}.get(status, "server_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or {"Retry-After": "1"})


# What /health reports of the worker's options, and the request fields a JSON answer echoes.
_OPTIONS = ("max_batch", "max_queue", "context", "preset", "prompt_cache_entries", "draft_model")
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "seed", "max_tokens", "repetition_penalty")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlxctl-fake-worker")
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--load-seconds", type=float, default=0.0)
    parser.add_argument("--tokens-per-second", type=float, default=1000.0)
    parser.add_argument("--fail-load", action="store_true")
    parser.add_argument("--rss-mb", type=int, default=0)
    parser.add_argument("--prompt-cache-entries", type=int, default=16)
    parser.add_argument("--prompt-cache-bytes", default="2GiB")
    parser.add_argument("--kv-bits", type=int)
    parser.add_argument("--kv-group-size", type=int, default=64)
    parser.add_argument("--disk-cache-bytes", default="0")
    parser.add_argument("--draft-model")
    parser.add_argument("--prompt-lookup", action="store_true")
    parser.add_argument("--num-draft-tokens", type=int, default=3)
    parser.add_argument("--api-key-file")
    parser.add_argument("--context", type=int)
    parser.add_argument("--preset")
    parser.add_argument("--chat-template")
    parser.add_argument("--tool-call-parser")
    parser.add_argument("--reasoning-parser")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_app(args)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
