"""Turning what a user typed into one registered model.

`resolve_reference` is for reads and inference: exact slug, exact repo id or
model id, then an unambiguous prefix of a slug or repo id. `resolve_exact` is
for anything that deletes, replaces, unloads or publishes: the exact slug,
repo id or model id only, so `rm mod` can never take `model`. Unknown or
ambiguous references name the closest candidates.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from mlxctl.errors import InvalidInput, NotFound
from mlxctl.registry.record import ModelRecord


def resolve_reference(reference: str, records: Sequence[ModelRecord]) -> ModelRecord:
    ref = _clean(reference)
    exact = _exact(ref, records)
    if exact is not None:
        return exact
    prefixed = _prefixed(ref, records)
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise _ambiguous(ref, prefixed)
    raise NotFound(f"model '{ref}' is not registered", hint=_closest_hint(ref, records))


def resolve_exact(reference: str, records: Sequence[ModelRecord]) -> ModelRecord:
    """The model whose slug, repo id or model id is `reference`; never a prefix.

    NotFound names the close matches (a prefix match among them), so the
    user can retype the full name.
    """
    ref = _clean(reference)
    exact = _exact(ref, records)
    if exact is not None:
        return exact
    # The models a prefix would have taken come first: they are what the user meant.
    close = list(
        dict.fromkeys([r.slug for r in _prefixed(ref, records)] + closest_names(ref, records))
    )
    if not close:
        raise NotFound(f"no model is named exactly '{ref}'", hint=_closest_hint(ref, records))
    raise NotFound(
        f"no model is named exactly '{ref}'",
        hint=f"did you mean: {', '.join(close[:3])}? (deleting, unloading, copying over "
        "or pushing needs the exact name)",
    )


def _prefixed(ref: str, records: Sequence[ModelRecord]) -> list[ModelRecord]:
    lowered = ref.lower()
    return [
        r
        for r in records
        if r.slug.startswith(lowered) or (r.repo_id or "").lower().startswith(lowered)
    ]


def _clean(reference: str) -> str:
    ref = reference.strip()
    if not ref:
        raise InvalidInput("empty model name")
    return ref


def _exact(ref: str, records: Sequence[ModelRecord]) -> ModelRecord | None:
    lowered = ref.lower()
    for record in records:
        if record.slug == lowered:
            return record
    by_id = [r for r in records if ref in (r.repo_id, r.model_id)]
    if len(by_id) > 1:
        raise _ambiguous(ref, by_id)
    return by_id[0] if by_id else None


def closest_names(reference: str, records: Sequence[ModelRecord], n: int = 3) -> list[str]:
    names = [r.slug for r in records] + [r.repo_id for r in records if r.repo_id]
    return (
        difflib.get_close_matches(reference.lower(), names, n=n, cutoff=0.4)
        or [name for name in names if reference.lower() in name.lower()][:n]
    )


def _closest_hint(reference: str, records: Sequence[ModelRecord]) -> str:
    close = closest_names(reference, records)
    if close:
        return "did you mean: " + ", ".join(close) + "?"
    if not records:
        return "the registry is empty: run `mlxctl init` to register the models in your HF cache"
    return "see `mlxctl list` for the registered models"


def _ambiguous(reference: str, matches: Sequence[ModelRecord]) -> InvalidInput:
    names = ", ".join(sorted(r.slug for r in matches))
    return InvalidInput(f"'{reference}' matches several models: {names}", hint="use the full slug")
