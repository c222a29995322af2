"""The Ollama dialect, translated onto the workers' OpenAI API.

chat.py    /api/chat, /api/generate (NDJSON, real durations)
models.py  /, /api/version, /api/tags, /api/ps, /api/show, /api/copy, /api/delete
embed.py   /api/embed, /api/embeddings        pull.py  /api/pull (NDJSON progress)
create.py  /api/create (a ModelSpec from JSON)  push.py  /api/push (to an OCI registry)
blobs.py   HEAD/POST /api/blobs/:digest (the one raw-body route: model files, streamed)
progress.py  store progress as Ollama's NDJSON status lines (pull, push, create)
errors.py  the `{"error": "..."}` envelope
"""
