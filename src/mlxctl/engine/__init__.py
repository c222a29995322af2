"""The inference engine that runs inside a worker process, on mlx-lm."""
