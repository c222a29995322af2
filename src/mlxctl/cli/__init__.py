"""The `mlxctl` command line."""
