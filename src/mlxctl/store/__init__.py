"""Model files on disk: inspecting model folders, scanning the Hugging Face
cache, and planned removal. The bottom of the stack: imports nothing above
`mlxctl.registry.record`.

The content-addressed model store lives here too (see docs/store.md): blobs,
manifests, tags, ModelSpec, garbage collection and verification; registry
clients (`store.oci`, `store.auth`, `store.transfer`) and Hugging Face pulls
(`store.hfpull`) are imported from their modules.
"""

from mlxctl.store.blobs import BlobStore, CorruptBlob
from mlxctl.store.garbage import PrunePlan, execute_prune, plan_prune
from mlxctl.store.hfcache import (
    HF_SOURCE,
    FoundModel,
    ScanResult,
    SkippedEntry,
    scan_hf_cache,
)
from mlxctl.store.integrity import VerifyReport, verify_store
from mlxctl.store.layout import STORE_SOURCE, StoreLayout
from mlxctl.store.manifest import Manifest, ModelConfig
from mlxctl.store.modelinfo import (
    GGUF_UNSUPPORTED,
    ModelInfo,
    inspect_model_dir,
    read_safetensors_header,
    to_record,
)
from mlxctl.store.modelspec import ModelSpec, format_spec, parse_spec
from mlxctl.store.removal import RemovalPlan, execute_removal, plan_removal
from mlxctl.store.tags import ModelName, parse_name

__all__ = [
    "GGUF_UNSUPPORTED",
    "HF_SOURCE",
    "STORE_SOURCE",
    "BlobStore",
    "CorruptBlob",
    "FoundModel",
    "Manifest",
    "ModelConfig",
    "ModelInfo",
    "ModelName",
    "ModelSpec",
    "PrunePlan",
    "RemovalPlan",
    "ScanResult",
    "SkippedEntry",
    "StoreLayout",
    "VerifyReport",
    "execute_prune",
    "execute_removal",
    "format_spec",
    "inspect_model_dir",
    "parse_name",
    "parse_spec",
    "plan_prune",
    "plan_removal",
    "read_safetensors_header",
    "scan_hf_cache",
    "to_record",
    "verify_store",
]
