"""The client side of the daemon: its address (MLXCTL_HOST) and the HTTP client the CLI uses."""

from mlxctl.client.address import Address, parse_address
from mlxctl.client.daemon import DaemonClient

__all__ = ["Address", "DaemonClient", "parse_address"]
