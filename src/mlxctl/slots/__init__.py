"""Slots: fixed ports with stable aliases, reconciled from the registry.

table.py       settings → ports and aliases; port-or-alias → slot
reconcile.py   pure plan: desired vs observed → actions + drift
verify.py      settings a model needs; the worker's audit vs the registry
supervisor.py  the admin operations and the reconcile loop, over supervision.WorkerProcess
"""

from mlxctl.slots.supervisor import SlotSupervisor

__all__ = ["SlotSupervisor"]
