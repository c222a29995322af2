"""Process supervision: one worker process per loaded model.

base.py      the `Worker` shape the scheduler drives, `MemoryReading`, `LoadError`
process.py   `WorkerProcess`: spawn in its own group, wait for /health, stop, reap
memory.py    measured memory: RSS from the OS, MLX counters from /v1/worker/stats
orphans.py   pid files, so workers left by a daemon killed hard are cleaned up
fake.py      a fake worker (same HTTP contract, set load time and tokens/s)
"""

from mlxctl.workers.base import LoadError, MemoryReading, Worker, WorkerFactory

__all__ = ["LoadError", "MemoryReading", "Worker", "WorkerFactory"]
