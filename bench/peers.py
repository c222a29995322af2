"""What a peer hop costs: a request to daemon A for a model only its peer B has, beside
the same request straight to B, on the factory `small` model.

    .venv/bin/python bench/peers.py [--runs 8] [--tokens 64] [--ttft-runs 30] [--fake]

Starts B (the model, loaded) and A (no models; config.yaml `peers: {b: B}`), each in its
own temp MLXCTL_HOME, then with the same streaming client, interleaving the two paths:
  - time to first token, A→B vs B (target: added median ≤ 5 ms over loopback);
  - decode tokens/s, A→B vs B (target ≥ 0.98×).
Both paths go through B's daemon to its worker, so the difference is A's hop alone.
With --fake the worker is fake (no model, 2000 tokens/s), to expose the hop's own cost.
Ratios are medians over pairs of runs (alternating which goes first) in this same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
from daemon import CHAT, MESSAGES, daemon, medians, paired  # bench/daemon.py (run from bench/)

from mlxctl.factory import make_model
from mlxctl.library.inventory import register_path
from mlxctl.registry import ModelRecord, open_registry
from mlxctl.settings import Settings

MODEL = "small-a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="decode runs per path")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per decode run")
    parser.add_argument("--ttft-runs", type=int, default=30, help="TTFT runs per path")
    parser.add_argument("--fake", action="store_true", help="a fake worker (2000 tok/s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlxctl-bench-peers-") as tmp:
        root = Path(tmp)
        b_home, a_home = root / "b", root / "a"
        registry = open_registry(Settings.from_env({**os.environ, "MLXCTL_HOME": str(b_home)}))
        if args.fake:
            registry.add(ModelRecord(slug=MODEL, cache_path=f"/fake/{MODEL}", size_bytes=1))
        else:
            path = make_model(root / MODEL, arch="qwen2", size="small")
            register_path(registry, path, slug=MODEL)
        registry.db.close()

        with daemon(b_home, args.fake) as (b_url, _), httpx.Client(timeout=300) as client:
            a_home.mkdir()
            (a_home / "config.yaml").write_text(f"peers:\n  b:\n    url: {b_url}\n")
            with daemon(a_home, args.fake) as (a_url, _):
                short = {"model": MODEL, "messages": MESSAGES, "max_tokens": 1}
                client.post(b_url + CHAT, json=short).raise_for_status()  # load on B
                deadline = time.monotonic() + 30
                while client.post(a_url + CHAT, json=short).status_code != 200:
                    if time.monotonic() > deadline:  # A has not read B's status yet
                        raise SystemExit("A never forwarded to B")
                    time.sleep(0.2)

                ttft, decode = paired(client, b_url, a_url, MODEL, args)

    d_b, d_ab, d_ratio, t_b, t_ab, added = medians(ttft, decode)
    print(
        f"model {MODEL} ({'fake worker' if args.fake else 'factory small qwen2'}), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("| measure | B direct | A→B | ratio | target |")
    print("|---|---|---|---|---|")
    ok = "✔" if d_ratio >= 0.98 else "✘"
    print(f"| decode tok/s (median) | {d_b:.1f} | {d_ab:.1f} | {d_ratio:.3f}× | ≥ 0.98× {ok} |")
    ok = "✔" if added <= 5 else "✘"
    print(
        f"| TTFT ms (median) | {t_b * 1000:.1f} | {t_ab * 1000:.1f} | {added:+.1f} ms "
        f"| ≤ +5 ms {ok} |"
    )
    print(f"\ndecode tok/s per run: B   {[round(x, 1) for x in decode['direct']]}")
    print(f"                      A→B {[round(x, 1) for x in decode['daemon']]}")


if __name__ == "__main__":
    main()
