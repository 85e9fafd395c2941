"""LiteLLM's proxy, the peer the bench compares the gateway with.

It lives in its own venv (`var/bench-litellm-venv`, made on the first run and kept while its pins stay
the same), so its dependencies never meet the project's. It runs as LiteLLM documents a proxy without a
database: `litellm --config YAML --port P --num_workers 2` (uvicorn workers), a fixed master key (it
refuses to start without one; with no database the key is checked in memory, its cheapest auth), one
model entry `openai/gpt-4o-mini` on the OpenAI-compatible provider pointed at the same fake upstream,
the local model-cost map (no download at start) and logging at ERROR. httptools is added beside it so
uvicorn parses HTTP as fast as it does for the gateway (without it, uvicorn falls back to h11).

    python -m benchmarks.litellm_proxy    # makes the venv now (else the first `make bench` does)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "bench-litellm-venv"
# The newest release whose `proxy` extra resolves on PyPI for Python 3.11 here (1.108+ pin
# litellm-proxy-extras releases that are not published).
PINS = ("litellm[proxy]==1.106.12", "httptools==0.9.0")
VERSION = PINS[0].split("==")[1]
_MARKER = VENV / ".installed"
# Any strong-looking key: LiteLLM refuses to start with none, or with a weak one.
MASTER_KEY = "sk-bench-" + "0123456789abcdef" * 4
MODEL = "openai/gpt-4o-mini"
WORKERS = 2


def venv_ensure() -> float:
    """Make the venv unless it holds these pins already; the seconds the install took (0 when reused)."""
    if _MARKER.exists() and _MARKER.read_text() == "\n".join(PINS):
        return 0.0
    started = time.monotonic()
    print(f"installing {', '.join(PINS)} into {VENV.relative_to(ROOT)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PINS], check=True, stderr=subprocess.DEVNULL)
    _MARKER.write_text("\n".join(PINS))
    return round(time.monotonic() - started, 1)


def config_write(upstream_port: int) -> Path:
    """The proxy's YAML: one model on the fake upstream, nothing logged or stored."""
    path = ROOT / "var" / "bench-litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: {MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-bench-not-a-real-key\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  turn_off_message_logging: true\n"
        "  callbacks: []\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
    )
    return path


def command(config: Path, port: int) -> list[str]:
    litellm = str(VENV / "bin" / "litellm")
    return [litellm, "--config", str(config), "--port", str(port), "--num_workers", str(WORKERS)]


def environment() -> dict:
    """The whole environment of the proxy: ours without DATABASE_URL (no database), plus its settings."""
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    return {
        **env,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        # No .env read from the working directory.
        "LITELLM_MODE": "PRODUCTION",
    }


if __name__ == "__main__":
    print(f"installed in {venv_ensure()} s")
