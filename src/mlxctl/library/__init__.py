"""The library: the model store joined to the registry.

Sits above `registry` and `store` (like `inventory.py`) and turns store
operations into registered models: `catalog` (import, tag, register, cp,
integrity marks), `build` (create from a ModelSpec, print it back) and
`transfer` (pull from the Hugging Face hub or an OCI registry, push, login).
"""
