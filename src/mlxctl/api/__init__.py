"""The daemon's HTTP API: one package per dialect, the pieces they share beside them.

openai/ ollama/ anthropic/ admin/   the dialects (admin: mlxctl's own API)
llamacpp/      llama.cpp's router model routes (/models…)
openapi/       /openapi.json, one module per dialect
app.py         the app factory and lifespan (registry, scheduler, workers)
server.py      uvicorn with a graceful SIGTERM; JSON logs
middleware.py  request id, access log, metrics, draining (httpguard: Host, Origin, key)
envelope.py    which dialect a path speaks; routing errors in its envelope
errors.py      the daemon's OpenAI envelope  body.py   request-body fields
dialect.py     the handler skeleton: a Dialect's envelope, Incoming, streamed/collected
turn.py        one worker generation as typed pieces (collect(): all of it), for the dialects
metrics.py     /metrics (Prometheus), slot_metrics.py its per-slot series
"""
