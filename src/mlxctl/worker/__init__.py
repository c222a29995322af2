"""The inference worker: one process serving one model over an OpenAI-compatible API.

    cli/worker.py ─▶ server.run_worker ─▶ app.create_app ─▶ routes
                                             │
        requests (parse) ─▶ chat (template) ─▶ completion (engine events)
                                             ├─▶ textstream (stops, reasoning, tools)
                                             ├─▶ structured (llguidance logits processor)
                                             └─▶ sse / openai_errors (wire shapes)

The engine (`mlxctl.engine.generator.Engine`) owns all MLX work on its own
thread; nothing in this package calls MLX from the event loop.
"""

from mlxctl.worker.app import ServedModel, WorkerEngine, create_app

__all__ = ["ServedModel", "WorkerEngine", "create_app"]
