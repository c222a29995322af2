"""Model folders and the Hugging Face cache: model and GGUF facts read from
headers, the model's kind, cache scans, hub pulls, planned removal, and the
files a registry row may make mlxctl read (`confine`)."""
