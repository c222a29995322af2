"""Model files on disk: inspecting model folders, scanning the Hugging Face
cache, and planned removal. The bottom of the stack: imports nothing above
`mlxctl.registry.record`.
"""

from mlxctl.store.hfcache import (
    HF_SOURCE,
    FoundModel,
    ScanResult,
    SkippedEntry,
    scan_hf_cache,
)
from mlxctl.store.modelinfo import (
    GGUF_UNSUPPORTED,
    ModelInfo,
    inspect_model_dir,
    read_safetensors_header,
    to_record,
)
from mlxctl.store.removal import RemovalPlan, execute_removal, plan_removal

__all__ = [
    "GGUF_UNSUPPORTED",
    "HF_SOURCE",
    "FoundModel",
    "ModelInfo",
    "RemovalPlan",
    "ScanResult",
    "SkippedEntry",
    "execute_removal",
    "inspect_model_dir",
    "plan_removal",
    "read_safetensors_header",
    "scan_hf_cache",
    "to_record",
]
