"""The library: models on disk joined to the registry.

Sits above `registry` and `store` and is the one place that turns files into
registered models and back: `inventory` (init from the Hugging Face cache,
register a folder, vet imported rows, rm), `catalog` (store models: import,
tag, register, cp, integrity marks), `build` (create from a ModelSpec, print it
back) and `transfer` (pull from the Hugging Face hub or an OCI registry, push,
login).
"""
