"""One model split over several ranks (hosts) with MLX's own distributed runtime.

    spec.py     what a `shard:` section says: hosts (ranks, address, memory), backend, mode
    plan.py     the memory planner: each host's share of the weights and KV, from the
                safetensors headers, checked against each host's budget
    launch.py   the argv: `mlx.launch` (hostfile, ring ports) running `mlx_lm.server` on
                every rank; rank 0, on this machine, serves the API the daemon talks to
    limits.py   what the sharded path cannot do, refused with a 400 that names it

The daemon supervises the whole `mlx.launch` process group like any worker
(supervision/process.py): a sharded model is served by an external OpenAI server,
`mlx_lm.server`, which broadcasts each request to every rank itself (docs/scale-out.md).
"""
