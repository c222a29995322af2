"""The worker's HTTP app: one model, the OpenAI endpoints, health and stats.

`create_app(model, load_engine)` returns a Starlette app whose lifespan loads
the engine in a thread (while `/health` answers `loading` and the API answers
503), then serves:

    POST /v1/chat/completions    POST /v1/completions    POST /v1/embeddings
    GET  /v1/models              GET  /health        GET /v1/worker/stats

The HTTP side never calls MLX: requests become `GenerationRequest`s (token ids
plus sampling), and templating, tokenization and grammar compilation run in
worker threads so the event loop stays free. `mlxctl.httpguard.HTTPGuard` sits in
front of every route (Host, Origin, the API key when the worker has one, body
type and size), as in front of the daemon's.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mlxctl.engine.generator import ContextOverflow
from mlxctl.engine.templatebox import TemplateSandbox
from mlxctl.engine.types import DoneEvent, GenerationRequest, LogitsProcessorFactory, TokenEvent
from mlxctl.httpguard import GuardPolicy, HTTPGuard, json_object
from mlxctl.settings import Settings
from mlxctl.traffic import Traffic
from mlxctl.worker import completion as out
from mlxctl.worker import embeddings, sse
from mlxctl.worker.access import COMPLETION_KEY, AccessLog
from mlxctl.worker.chat import ChatPrompter, RenderedPrompt, encode_prompt
from mlxctl.worker.openai_errors import (
    APIError,
    api_error_handler,
    error_response,
    http_exception_handler,
    invalid_request,
    to_api_error,
)
from mlxctl.worker.requests import RequestSpec, parse_chat, parse_completion
from mlxctl.worker.structured import ForcedOutput, JsonGrammars
from mlxctl.worker.textstream import OutputStream, StreamSyntax, make_stream

log = logging.getLogger("mlxctl.worker")

TEST_HOOKS_ENV = "MLXCTL_WORKER_TEST_HOOKS"


class WorkerEngine(Protocol):
    """What the app needs from `mlxctl.engine.generator.Engine` (fakes match it too)."""

    tokenizer: Any
    context_length: int
    model_path: Path
    eos_token_ids: set[int]

    def close(self) -> None: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent | DoneEvent]: ...

    def stats(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServedModel:
    """The served model: its public id and the registry's overrides, if any.

    A store model adds what its ModelSpec says: a LoRA `adapter_path`, request
    `defaults` (PARAMETER, already mapped by `requests.request_defaults`), a
    `system` prompt and few-shot `messages`.
    """

    id: str
    path: Path
    repo_id: str | None = None
    chat_template: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    adapter_path: Path | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None
    messages: Sequence[Mapping[str, Any]] = ()


class WorkerState:
    """Everything the routes share; set up once the engine has loaded."""

    def __init__(self, model: ServedModel, *, test_hooks: bool, settings: Settings) -> None:
        self.model = model
        self.test_hooks = test_hooks
        self.settings = settings
        # Client-supplied chat templates render in a child process (engine/templatebox.py).
        self.sandbox: TemplateSandbox | None = None
        if settings.allow_client_templates:
            self.sandbox = TemplateSandbox(
                timeout=settings.template_timeout, max_chars=settings.template_max_chars
            )
        self.status: Literal["loading", "ok", "failed"] = "loading"
        self.error: str | None = None
        self.started = time.monotonic()
        self.requests_total = self.errors_total = self.disconnects_total = 0
        self.active = self.tokens_served = 0
        self.traffic = Traffic()  # every request answered, with the access log's figures
        self._engine: WorkerEngine | None = None
        self.embedding_only = False

    def attach(self, engine: WorkerEngine) -> None:
        tok = engine.tokenizer
        # An encoder (engine/encoder.py) only embeds: no template, grammar or stream setup.
        self.embedding_only = getattr(engine, "kind", "chat") == "embedding"
        if self.embedding_only:
            self.vocab_size = len(tok)
            self._engine, self.status = engine, "ok"
            return
        self.syntax = StreamSyntax.from_tokenizer(
            tok,
            tool_parser=self.model.tool_call_parser,
            reasoning_parser=self.model.reasoning_parser,
        )
        self.prompter = ChatPrompter(
            tok,
            template_path=self.model.chat_template,
            think_markers=self.syntax.think,
            system=self.model.system,
            few_shot=[dict(m) for m in self.model.messages],
            sandbox=self.sandbox,
            max_chars=self.settings.template_max_chars,
        )
        self.grammars = JsonGrammars(tok, engine.eos_token_ids)
        self.vocab_size = len(tok)
        self.token_text = functools.lru_cache(maxsize=1 << 16)(
            lambda token: str(tok.decode([token]))
        )
        self._engine = engine
        self.status = "ok"

    def ended(self, run: out.Completion) -> None:
        """Called once per submitted request when its engine generator is closed."""
        if run.started:
            self.active -= 1
            self.tokens_served += run.completion_tokens
            self.disconnects_total += 0 if run.finished else 1

    @property
    def engine(self) -> WorkerEngine:
        """The loaded engine; a 503 while loading or after a failed load."""
        if self._engine is None:
            if self.status == "failed":
                raise APIError(503, f"The model failed to load: {self.error}", code="load_failed")
            raise APIError(
                503, "The model is still loading.", code="loading", headers={"Retry-After": "1"}
            )
        return self._engine

    def require_engine(self) -> None:
        """Raise the 503 of `engine` unless the model has loaded."""
        if self._engine is None:
            self.engine  # noqa: B018 - the property raises the right error

    def require_generation(self) -> None:
        """As `require_engine`, and a 400 when the model is an embedding model."""
        self.require_engine()
        if self.embedding_only:
            raise APIError(
                400,
                f"'{self.model.id}' is an embedding model: use /v1/embeddings.",
                param="model",
                code="model_not_supported",
            )


Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    model: ServedModel,
    load_engine: Callable[[], WorkerEngine],
    *,
    on_ready: Callable[[WorkerState], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
    test_hooks: bool | None = None,
    guard: GuardPolicy | None = None,
    settings: Settings | None = None,
) -> Starlette:
    """The worker app; `load_engine` builds and starts the engine (blocking, run in a thread).

    `guard` says who may call it (default: loopback callers, no key); `settings`
    (default: from the environment) bring the request limits.
    """
    settings = settings or Settings.from_env()
    hooks = settings.worker_test_hooks if test_hooks is None else test_hooks
    state = WorkerState(model, test_hooks=hooks, settings=settings)
    policy = guard or GuardPolicy.from_settings(settings, bind_host="127.0.0.1", api_key=None)

    async def load() -> None:
        try:
            engine = await anyio.to_thread.run_sync(load_engine)
            await anyio.to_thread.run_sync(state.attach, engine)
        except Exception as e:
            state.status, state.error = "failed", f"{type(e).__name__}: {e}"
            log.exception("loading %s failed", model.path)
            if on_failure is not None:
                on_failure(e)
            return
        if on_ready is not None:
            on_ready(state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            yield
            tg.cancel_scope.cancel()
        if state.sandbox is not None:
            await anyio.to_thread.run_sync(state.sandbox.close)
        if state._engine is not None:
            await anyio.to_thread.run_sync(state._engine.close)

    def endpoint(fn: Callable[[Request, WorkerState], Awaitable[Response]]) -> Handler:
        async def handle(request: Request) -> Response:
            try:
                return await fn(request, state)
            except Exception as e:
                error = to_api_error(e)
                state.errors_total += error.status != 499  # a client that left is no error
                return error_response(error)

        return handle

    routes = [
        Route("/v1/chat/completions", endpoint(chat_completions), methods=["POST"]),
        Route("/v1/completions", endpoint(completions), methods=["POST"]),
        Route("/v1/embeddings", endpoint(embeddings.create), methods=["POST"]),
        Route("/v1/models", endpoint(models), methods=["GET"]),
        Route("/health", endpoint(health), methods=["GET"]),
        Route("/v1/worker/stats", endpoint(stats), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # The access log outside the guard: refusals are logged and counted too.
        middleware=[
            Middleware(AccessLog, traffic=state.traffic, model=model.id),
            Middleware(HTTPGuard, policy=policy, respond=_refusal_response),
        ],
        # Starlette's own 404/405, and anything that escapes a route, in the same envelope.
        exception_handlers={HTTPException: http_exception_handler, Exception: api_error_handler},
    )
    app.state.worker = state
    return app


async def chat_completions(request: Request, state: WorkerState) -> Response:
    state.require_generation()
    spec = parse_chat(
        await _json(request),
        vocab_size=state.vocab_size,
        test_hooks=state.test_hooks,
        defaults=state.model.defaults,
        client_templates=state.sandbox is not None,
    )
    prompt = await _render(state, spec)
    stream = make_stream(
        state.syntax,
        stop=spec.stop,
        tools=spec.tools,
        starts_in_reasoning=prompt.starts_in_reasoning,
    )
    ident = out.Ident.new("chatcmpl", state.model.id)
    run = await _submit(request, state, spec, prompt.tokens, stream, ident.id)
    if spec.stream:
        return _sse(out.chat_chunks(run, ident, state.token_text, spec.include_usage))
    return JSONResponse(await out.chat_response(run, ident, state.token_text))


async def completions(request: Request, state: WorkerState) -> Response:
    state.require_generation()
    engine = state.engine
    spec = parse_completion(
        await _json(request),
        vocab_size=state.vocab_size,
        test_hooks=state.test_hooks,
        defaults=state.model.defaults,
    )
    assert spec.prompt is not None
    tokens = await anyio.to_thread.run_sync(encode_prompt, engine.tokenizer, spec.prompt)
    stream = make_stream(state.syntax, stop=spec.stop, chat=False)
    ident = out.Ident.new("cmpl", state.model.id)
    run = await _submit(request, state, spec, tokens, stream, ident.id)
    if spec.stream:
        return _sse(out.text_chunks(run, ident, state.token_text, spec.include_usage))
    return JSONResponse(await out.text_response(run, ident, state.token_text))


async def models(request: Request, state: WorkerState) -> Response:
    engine = state.engine
    card = {
        "id": state.model.id,
        "object": "model",
        "created": int(time.time() - (time.monotonic() - state.started)),
        "owned_by": "mlxctl",
        "context_length": engine.context_length,
        "root": str(state.model.path),
    }
    return JSONResponse({"object": "list", "data": [card]})


async def health(request: Request, state: WorkerState) -> Response:
    model = {"id": state.model.id, "path": str(state.model.path), "repo_id": state.model.repo_id}
    body: dict[str, Any] = {"status": state.status, "model": model, "pid": os.getpid()}
    # The daemon's per-start nonce (supervision/health.py): its proof this is its worker.
    body["nonce"] = os.environ.get("MLXCTL_WORKER_NONCE")
    if state.error:
        body["error"] = state.error
    return JSONResponse(body, status_code=503 if state.status == "failed" else 200)


async def stats(request: Request, state: WorkerState) -> Response:
    engine_stats = state.engine.stats()
    http = {
        "requests_total": state.requests_total,
        "requests_active": state.active,
        "errors_total": state.errors_total,
        "disconnects_total": state.disconnects_total,
    }
    body = {
        **engine_stats,
        "model": state.model.id,
        "uptime_s": round(time.monotonic() - state.started, 3),
        "tokens_served": state.tokens_served,
        "http": http,
        "traffic": state.traffic.snapshot(),
    }
    return JSONResponse(body)


async def _submit(
    http: Request,
    state: WorkerState,
    spec: RequestSpec,
    prompt: list[int],
    stream: OutputStream,
    request_id: str,
) -> out.Completion:
    """Build the GenerationRequest and wait for its first event (errors before any byte)."""
    engine = state.engine
    tok = engine.tokenizer
    processors: list[LogitsProcessorFactory] = []
    if spec.response_format is not None:
        fmt = spec.response_format
        processors.append(await anyio.to_thread.run_sync(state.grammars.factory, fmt))
    if spec.force_text is not None:
        ids = (await anyio.to_thread.run_sync(_encode_texts, tok, [spec.force_text]))[0]
        processors.append(ForcedOutput(ids, min(engine.eos_token_ids), state.vocab_size))
    # Stop strings (at most 16 of 256 characters) are tokenized in a thread like prompts.
    stop_ids = await anyio.to_thread.run_sync(_encode_texts, tok, spec.stop) if spec.stop else []
    request = GenerationRequest(
        prompt_tokens=prompt,
        max_tokens=spec.max_tokens or max(1, engine.context_length - len(prompt)),
        sampling=spec.sampling,
        stop_token_ids=stop_ids,
        logits_processors=processors,
        request_id=request_id,
    )
    run = out.Completion(
        engine.generate,
        request,
        stream,
        on_end=state.ended,
        disconnected=None if spec.stream else http.is_disconnected,
    )
    state.requests_total += 1
    setattr(http.state, COMPLETION_KEY, run)  # its token counts, for the access log
    try:
        await run.start()
    except ContextOverflow as e:
        error = to_api_error(e)
        error.param = "messages" if spec.kind == "chat" else "prompt"
        raise error from e
    state.active += 1
    return run


def _sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    return StreamingResponse(sse.frame(chunks), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


async def _render(state: WorkerState, spec: RequestSpec) -> RenderedPrompt:
    """The chat template applied in a thread, within MLXCTL_TEMPLATE_TIMEOUT.

    A model's own template renders in this process: past the deadline the request
    ends with a 400 and the thread is left to finish. A client's template renders in
    the sandbox process, which is killed at the deadline (the margin lets it be first).
    """
    render = functools.partial(
        state.prompter.render, spec.messages, tools=spec.tools, template_kwargs=spec.template_kwargs
    )
    limit = state.settings.template_timeout
    try:
        with anyio.fail_after(limit + 1):
            return await anyio.to_thread.run_sync(render, abandon_on_cancel=True)
    except TimeoutError:
        raise invalid_request(
            f"The chat template did not render within {limit:g} s (MLXCTL_TEMPLATE_TIMEOUT).",
            "messages",
            code="template_timeout",
        ) from None


def _encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return [list(tokenizer.encode(text, add_special_tokens=False)) for text in texts]


def _refusal_response(path: str, error: APIError) -> Response:
    """The guard's refusals (Host, Origin, key, body) in the OpenAI envelope."""
    return error_response(error)


async def _json(request: Request) -> dict[str, Any]:
    return json_object(await request.body())
