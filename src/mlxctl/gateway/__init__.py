"""Gateways in front of mlxctl: LiteLLM proxy config and its model-management API."""
