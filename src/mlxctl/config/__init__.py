"""config.yaml: what it may hold, how it is read, layered over the environment and
reloaded in a running daemon (docs/config.md).

    schema.py   the fields, validated (pydantic); a model's options layered from them
    file.py     YAML → ConfigFile, or one ConfigError naming the line and field
    layers.py   daemon settings: environment over file over defaults (pydantic-settings)
    routing.py  which model of a routing alias answers (pure)
    live.py     the config a daemon uses, its reload, file watcher and SIGHUP
    verify.py   what `mlxctl verify` finds wrong with a valid file
"""
