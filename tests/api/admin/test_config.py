"""The config routes' shapes, and /api/admin/metrics: the figures of /metrics, as JSON."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.config.daemon import Shared


def test_metrics_json_holds_the_same_figures_as_metrics(shared: Shared) -> None:
    shared.use("")
    assert shared.chat("m1").status_code == 200
    client = shared.daemon.client()
    data = client.get("/api/admin/metrics").json()
    text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert (
        data["daemon"]["mlxctl_memory_budget_bytes"] == samples[("mlxctl_memory_budget_bytes", ())]
    )
    m1 = data["models"]["m1"]
    assert m1["mlxctl_model_in_flight"] == 0
    assert {"state": "ready", "value": 1.0} in m1["mlxctl_model_state"]
    served = [r for r in m1["mlxctl_requests_total"] if r["route"] == "/v1/chat/completions"]
    assert served and served[0]["status"] == "200" and served[0]["value"] >= 1


def test_config_show_names_each_settings_source(shared: Shared) -> None:
    shared.use("settings:\n  max_queue: 9\naliases:\n  auto: [m1]\n")
    data = shared.daemon.client().get("/api/admin/config").json()
    assert data["settings"]["max_queue"] == {"value": 9, "source": "file"}
    assert data["settings"]["memory_budget"]["source"] == "default"
    assert data["aliases"] == {"auto": ["m1"]} and data["problems"] == []
    assert data["models"]["m1"]["max_batch"] == 8
