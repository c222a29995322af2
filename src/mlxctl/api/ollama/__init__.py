"""The Ollama dialect, translated onto the workers' OpenAI API.

chat.py    /api/chat, /api/generate (NDJSON, real durations)
models.py  /, /api/version, /api/tags, /api/ps, /api/show, /api/copy, /api/delete
embed.py   /api/embed, /api/embeddings        pull.py  /api/pull (NDJSON progress)
errors.py  the `{"error": "..."}` envelope
"""
