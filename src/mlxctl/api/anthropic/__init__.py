"""The Anthropic dialect: the Messages API (`messages.py`) and its envelope (`errors.py`)."""
