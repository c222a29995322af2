"""llama.cpp's router API (llama-server without a model): model management only.

models.py  /models, /models/load, /models/unload, /models/sse (status over SSE)
"""
