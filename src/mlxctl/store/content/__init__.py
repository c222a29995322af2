"""The content-addressed store: blobs named by their sha256, OCI image manifests,
`name:tag` files, the store folder and its model folders, ModelSpec text,
planned untag/prune, and re-hashing to verify."""
