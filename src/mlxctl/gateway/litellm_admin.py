"""Register mlxctl's models in a running LiteLLM proxy through its model-management API.

`GET /model/info` lists the proxy's models (from its config file and its database);
`POST /model/new` and `POST /model/update` write to the database, so they need the
proxy started with `DATABASE_URL` (Postgres) and `STORE_MODEL_IN_DB=True`. Without a
database LiteLLM answers "No DB Connected"; that becomes an Unavailable with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from mlxctl.errors import InvalidInput, MlxctlError, Unavailable
from mlxctl.gateway.litellm import MANAGED

NEEDS_DB_HINT = (
    "LiteLLM keeps API-added models only in its database: start the proxy with "
    "DATABASE_URL=postgresql://… and STORE_MODEL_IN_DB=True, or write a config with "
    "`mlxctl gateway litellm -o FILE` and start it with `litellm --config FILE`"
)


@dataclass(frozen=True)
class SyncAction:
    model_name: str
    action: str  # "added", "updated", "unchanged" or "conflict" (someone else's: untouched)
    model_id: str | None = None


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
    """Make each entry's model_name point where the entry says, adding or updating it.

    A name already served from the proxy's config file at the same api_base is left
    alone (config models cannot be edited through the API, and need not be). Only
    models mlxctl created (the `mlxctl_managed` mark in model_info) are updated; a
    name the proxy serves otherwise is a "conflict", left untouched, never joined.
    """
    existing = admin.models()
    actions = []
    for entry in entries:
        name = entry["model_name"]
        same = [m for m in existing if m.get("model_name") == name]
        wanted = entry["litellm_params"]
        if any(_params(m).get("api_base") == wanted["api_base"] for m in same):
            actions.append(SyncAction(name, "unchanged"))
            continue
        ours = [m for m in same if _info(m).get("db_model") and _info(m).get(MANAGED)]
        if ours:
            model_id = str(ours[0]["model_info"]["id"])
            admin.update(model_id, entry)
            actions.append(SyncAction(name, "updated", model_id))
        elif same:
            actions.append(SyncAction(name, "conflict", str(_info(same[0]).get("id") or "")))
        else:
            answer = admin.add(entry)
            new_id = (answer.get("model_info") or {}).get("id") or answer.get("model_id")
            actions.append(SyncAction(name, "added", None if new_id is None else str(new_id)))
    return actions


def _info(model: dict[str, Any]) -> dict[str, Any]:
    info = model.get("model_info")
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
