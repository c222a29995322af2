"""OCI distribution: the registry client (`client`), credentials and auth
challenges (`auth`), and push/pull of store models (`transfer`)."""
