"""Process supervision: the daemon's children, of every kind, through one door.

base.py       the `Worker` shape the scheduler drives, `MemoryReading`, `LoadError`
process.py    `WorkerProcess`: spawn, identity check, health wait, liveness, stop, adopt
command.py    what a child runs (mlxctl worker + settings, or an external command), its env
launch.py     the launcher in front of every child: rotating log pump, death with the daemon
handle.py     one running pid: exit noticed at once (exitwatch.py), SIGTERM → SIGKILL
health.py     who answers a port's /health; probe.py  who listens on a port, is it MLX
pidfile.py    pid files with create time and nonce: reaping and adoption
logtail.py    the start header and the log line that says why a start failed
memory.py     measured memory: RSS from the OS, MLX counters from /v1/worker/stats
fake.py       a fake worker (same HTTP contract, set load time and tokens/s)

Nothing is imported here: every child's launcher (`python -m mlxctl.supervision.launch`)
imports this package and must start fast.
"""
