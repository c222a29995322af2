"""Register mlxctl's models in a running LiteLLM proxy through its model-management API.

`GET /model/info` lists the proxy's models (from its config file and its database);
`POST /model/new` and `POST /model/update` write to the database, so they need the
proxy started with `DATABASE_URL` (Postgres) and `STORE_MODEL_IN_DB=True`. Without a
database LiteLLM answers "No DB Connected"; that becomes an Unavailable with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from mlxctl.errors import InvalidInput, MlxctlError, Unavailable
from mlxctl.gateway.litellm import HOST, MANAGED

NEEDS_DB_HINT = (
    "LiteLLM keeps API-added models only in its database: start the proxy with "
    "DATABASE_URL=postgresql://… and STORE_MODEL_IN_DB=True, or write a config with "
    "`mlxctl gateway litellm -o FILE` and start it with `litellm --config FILE`"
)


@dataclass(frozen=True)
class SyncAction:
    """One step of a sync: "added", "updated", "deleted", "unchanged" or "conflict"
    (someone else's name: untouched)."""

    model_name: str
    action: str
    model_id: str | None = None
    host: str | None = None
    entry: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class LiteLLMAdmin:
    """The few model-management calls `--sync` needs; `master_key` is LiteLLM's admin key."""

    def __init__(
        self, base_url: str, master_key: str, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {master_key}"},
            timeout=30.0,
            trust_env=False,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LiteLLMAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def models(self) -> list[dict[str, Any]]:
        data = self._call("GET", "/model/info").get("data") or []
        return [m for m in data if isinstance(m, dict)]

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/model/new", json=entry)

    def update(self, model_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        info = {**entry.get("model_info", {}), "id": model_id}
        return self._call("POST", "/model/update", json={**entry, "model_info": info})

    def delete(self, model_id: str) -> dict[str, Any]:
        return self._call("POST", "/model/delete", json={"id": model_id})

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise Unavailable(f"cannot reach the LiteLLM proxy at {self.base_url}: {e}") from None
        if response.status_code >= 400:
            raise _error(response, f"{method} {self.base_url}{path}")
        try:
            body = response.json()
        except ValueError:
            raise Unavailable(f"{self.base_url}{path} did not answer JSON") from None
        return body if isinstance(body, dict) else {"data": body}


def sync(admin: LiteLLMAdmin, entries: list[dict[str, Any]]) -> list[SyncAction]:
    """Make the proxy's mlxctl-made models exactly `entries` (`plan`, then `apply`)."""
    return apply(admin, plan(admin.models(), entries))


def plan(existing: list[dict[str, Any]], entries: list[dict[str, Any]]) -> list[SyncAction]:
    """The steps that turn the proxy's models (`existing`, from /model/info) into `entries`.

    A deployment already at the entry's api_base (config file or database) stays. Else
    a name someone else serves is a "conflict", never joined; else an mlxctl-made
    database deployment of the same name and host is repointed ("updated"); else the
    entry is added. An mlxctl-made database deployment no entry wants is deleted.
    Config-file models cannot be changed through the API, so they are left as they are.
    """
    actions: list[SyncAction | None] = [None] * len(entries)
    used: set[int] = set()
    for n, entry in enumerate(entries):
        base = _params(entry)["api_base"]
        for i, model in enumerate(existing):
            same = model.get("model_name") == entry["model_name"]
            if same and i not in used and _params(model).get("api_base") == base:
                used.add(i)
                actions[n] = _step(entry, "unchanged", model)
                break
    for n, entry in enumerate(entries):
        if actions[n] is not None:
            continue
        name = entry["model_name"]
        same = [(i, m) for i, m in enumerate(existing) if m.get("model_name") == name]
        foreign = [m for _, m in same if not _info(m).get(MANAGED)]
        movable = [
            i
            for i, m in same
            if i not in used and _ours(m) and _info(m).get(HOST) == _info(entry).get(HOST)
        ]
        if foreign:
            actions[n] = _step(entry, "conflict", foreign[0])
        elif movable:
            used.add(movable[0])
            actions[n] = _step(entry, "updated", existing[movable[0]], entry)
        else:
            actions[n] = _step(entry, "added", None, entry)
    steps = [a for a in actions if a is not None]
    for i, model in enumerate(existing):
        if i in used or not _ours(model):
            continue
        steps.append(_step(model, "deleted", model))
    return steps


def apply(admin: LiteLLMAdmin, steps: list[SyncAction]) -> list[SyncAction]:
    """Carry out `plan`'s steps in order; an added model gets the id the proxy gave it."""
    done = []
    for step in steps:
        if step.action == "added" and step.entry is not None:
            answer = admin.add(step.entry)
            new_id = (answer.get("model_info") or {}).get("id") or answer.get("model_id")
            step = replace(step, model_id=None if new_id is None else str(new_id))
        elif step.action == "updated" and step.entry is not None and step.model_id:
            admin.update(step.model_id, step.entry)
        elif step.action == "deleted" and step.model_id:
            admin.delete(step.model_id)
        done.append(step)
    return done


def _step(
    named: dict[str, Any],
    action: str,
    model: dict[str, Any] | None,
    entry: dict[str, Any] | None = None,
) -> SyncAction:
    model_id = _info(model).get("id") if model is not None else None
    return SyncAction(
        str(named["model_name"]),
        action,
        None if model_id is None else str(model_id),
        _info(named).get(HOST),
        entry,
    )


def _ours(model: dict[str, Any]) -> bool:
    """Made by mlxctl through the API (in the proxy's database), so mlxctl may change it."""
    return bool(_info(model).get("db_model") and _info(model).get(MANAGED))


def _info(model: dict[str, Any] | None) -> dict[str, Any]:
    info = (model or {}).get("model_info")
    return info if isinstance(info, dict) else {}


def _params(model: dict[str, Any]) -> dict[str, Any]:
    params = model.get("litellm_params")
    return params if isinstance(params, dict) else {}


def _error(response: httpx.Response, what: str) -> MlxctlError:
    text = _message(response)
    if "No DB Connected" in text or "STORE_MODEL_IN_DB" in text:
        return Unavailable(f"{what}: {text}", hint=NEEDS_DB_HINT)
    # Without a database LiteLLM can check only its master key; any other key ends here.
    if response.status_code in (401, 403) or "No connected db" in text:
        return InvalidInput(
            f"{what}: the proxy refused the key ({text})",
            hint="pass the proxy's master key: --master-key or LITELLM_MASTER_KEY",
        )
    return Unavailable(f"{what} answered {response.status_code}: {text}")


def _message(response: httpx.Response) -> str:
    # LiteLLM answers {"detail": {"error": …}} from FastAPI, or an OpenAI-style envelope.
    try:
        body = response.json()
    except ValueError:
        return response.text
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        detail = detail.get("error", detail.get("message", detail))
    if isinstance(detail, dict):
        detail = detail.get("message", detail)
    return str(detail)
