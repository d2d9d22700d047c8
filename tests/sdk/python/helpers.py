"""Helpers shared by the SDK test modules (fixtures live in conftest.py).

`tests/sdk/run.sh` exports the gateway's and the sim's base URLs as FLEXGATE_URL and
SIM_URL. The sim's request log (`GET /_sim/requests`) tells how many upstream attempts
one SDK call caused; cases find their own entries by a unique `x-request-id`, which
flexgate keeps and forwards, and which the SDK repeats on each of its own retries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

LANES = {
    "/v1": {"class": "interactive", "tier": "standard", "service_tier": "default"},
    "/flex/v1": {"class": "background", "tier": "flex", "service_tier": "flex"},
}


def gateway_url() -> str:
    url = os.environ.get("FLEXGATE_URL")
    if not url:
        pytest.exit("FLEXGATE_URL is not set: run this suite through tests/sdk/run.sh", returncode=2)
    return url


def sim_url() -> str:
    return os.environ.get("SIM_URL", "")


def make_client(lane: str, **kwargs) -> openai.OpenAI:
    """An SDK client for one lane; `max_retries=2` is the SDK default, spelled out."""
    kwargs.setdefault("api_key", "sk-sdk-suite")
    kwargs.setdefault("max_retries", 2)
    return openai.OpenAI(base_url=gateway_url() + lane, **kwargs)


def new_id() -> str:
    return f"sdk-py-{uuid.uuid4().hex}"


def sim_requests(request_id: str) -> list[dict]:
    """What the sim received for one client request id, in arrival order."""
    # No proxy: the sim is on the loopback interface, whatever the shell's proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(sim_url() + "/_sim/requests", timeout=10) as r:
        log = json.load(r)
    return [e for e in log if e.get("request_id") == request_id]


def header(entry: dict, name: str) -> str | None:
    return next((v for k, v in entry["headers"] if k == name), None)


def fault(request_id: str, script: str) -> dict:
    """Headers that script the sim's answers for this request."""
    return {"x-request-id": request_id, "x-sim-fault": script}


def metrics_text(url: str | None = None) -> str:
    """The `/metrics` page of the suite's gateway, or of the gateway at `url`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open((url or gateway_url()) + "/metrics", timeout=10) as r:
        return r.read().decode()


class Gateway:
    """A flexgate process of a test's own, in front of the suite's simulator."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process = process
        self.url = url
        self.log = log


@contextlib.contextmanager
def own_gateway(directory: Path, toml: str = "", env: dict[str, str] | None = None) -> Iterator[Gateway]:
    """Start `flexgate serve` (the binary tests/sdk/run.sh exports as FLEXGATE_BIN) with
    `toml` added to a configuration whose upstream is the suite's simulator, on a free
    port; for cases that need their own auth mode or that stop the gateway."""
    binary = os.environ.get("FLEXGATE_BIN")
    if not binary or not sim_url():
        pytest.exit("FLEXGATE_BIN and SIM_URL are not set: run this suite through tests/sdk/run.sh", returncode=2)
    config = directory / "flexgate.toml"
    config.write_text(
        f'[upstream]\nbase_url = "{sim_url()}/v1"\n[log]\nformat = "json"\nlevel = "warn,flexgate=info"\n{toml}'
    )
    log = directory / "flexgate.log"
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FLEXGATE_"))}
    process_env |= env or {}
    process_env["FLEXGATE_LISTEN"] = "127.0.0.1:0"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "serve", "--config", str(config)], stderr=out, env=process_env)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(rb'"listening".*?(127\.0\.0\.1:\d+)', log.read_bytes())):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"flexgate did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Gateway(process, "http://" + found.group(1).decode(), log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples carrying every given label."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        rest = line[len(name) :]
        if not rest.startswith(("{", " ")):
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
