"""The OpenAI dialect: the worker's own API, proxied (`routes.py`)."""
