"""The daemon's HTTP API: one module per dialect, plus admin and metrics.

app.py         the app factory and lifespan (registry, scheduler, workers)
server.py      uvicorn with a graceful SIGTERM; JSON logs
middleware.py  request id, access log, metrics, draining (httpguard: Host, Origin, key)
openai.py      /v1/chat/completions, /v1/completions, /v1/models (proxied)
admin.py       /health, /api/admin/{ps,status,load,unload}
metrics.py     /metrics (Prometheus)
errors.py      the OpenAI error envelope     body.py   request-body fields
"""
