"""Slots: fixed ports with stable aliases, reconciled from the registry.

table.py       settings → ports and aliases; port-or-alias → slot
probe.py       what listens on a port; is it an MLX server
reconcile.py   pure plan: desired vs observed → actions + drift
verify.py      settings a model needs; the worker's audit vs the registry
supervisor.py  start, stop, adopt slot workers; the admin operations
"""

from mlxctl.slots.supervisor import SlotSupervisor

__all__ = ["SlotSupervisor"]
