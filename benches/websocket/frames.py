"""CPU per relayed WebSocket frame, flexgate against a floor measured in the same run.

Two relays in front of `flexgate sim`: flexgate, and a floor, `socat` relaying the TCP
connection byte for byte (one process, 8 KiB buffers like flexgate's, reading and
counting nothing), started for each session. On one Realtime session through each,
alternately for ROUNDS rounds:

- upstream: 50,000 small frames sent (relayed, only followed for their boundaries);
- turns: 3,000 lockstep turns, `response.create` up and every event of the answer down
  (the simulator sends eight or more per turn; the last, `response.done`, is read for
  usage and counted as a request by flexgate).

Frames are counted as the client sends and receives them, so the figure per frame
divides by the frames that actually crossed. CPU is the target's time on CPU (user and
kernel, every thread) from /proc, which on loopback includes the kernel's delivery of
what it writes. Prints each
round and the medians, absolute and as a ratio to the floor. Run by
benches/websocket/run.sh."""

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys

import websockets

ROUNDS = int(os.environ.get("ROUNDS", "3"))
FRAMES = int(os.environ.get("FRAMES", "50000"))
TURNS = int(os.environ.get("TURNS", "3000"))


def cpu_seconds(pid: int) -> float:
    """Time on CPU of all the process's threads, in nanoseconds summed from schedstat (the
    clock-tick counts of /proc/PID/stat are too coarse for a few seconds of work)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
    return total / 1e9


async def until_done(ws) -> int:
    """Read events until `response.done`; how many arrived."""
    received = 1
    while json.loads(await ws.recv())["type"] != "response.done":
        received += 1
    return received


async def measure(address: str, pid: int) -> dict:
    url = f"ws://{address}/v1/realtime?model=gpt-realtime"
    headers = {"Authorization": "Bearer sk-bench"}
    async with websockets.connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
        await ws.recv()
        append = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 100})
        start = cpu_seconds(pid)
        for _ in range(FRAMES):
            await ws.send(append)
        await ws.send(json.dumps({"type": "response.create"}))
        down = await until_done(ws)
        upstream = (cpu_seconds(pid) - start) / (FRAMES + 1 + down)
        create = json.dumps({"type": "response.create"})
        frames = 0
        start = cpu_seconds(pid)
        for _ in range(TURNS):
            await ws.send(create)
            frames += 1 + await until_done(ws)
        used = cpu_seconds(pid) - start
    return {"upstream": upstream, "turn_frame": used / frames, "turn": used / TURNS, "per_turn": frames / TURNS}


@contextlib.contextmanager
def floor(sim: str):
    """A socat relay to the simulator for one connection: its address and process id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = subprocess.Popen(
        ["socat", "-d", "-d", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,nodelay", f"TCP:{sim},nodelay"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for message in relay.stderr:
            if "listening on" in message:
                break
        else:
            sys.exit("socat did not start")
        yield f"127.0.0.1:{port}", relay.pid
    finally:
        relay.kill()
        relay.wait()


def line(name: str, values: list[float], floor: list[float] | None = None, unit: float = 1e6) -> str:
    text = f"{name:<34}" + " ".join(f"{v * unit:7.1f}" for v in values)
    text += f"   median {statistics.median(values) * unit:7.1f} µs"
    if floor and all(floor):
        ratios = [v / f for v, f in zip(values, floor)]
        text += f"   x{statistics.median(ratios):.2f} the floor (rounds: {' '.join(f'{r:.2f}' for r in ratios)})"
    return text


async def main(gateway: str, gateway_pid: int, sim: str) -> None:
    runs = {"flexgate": [], "floor": []}
    for _ in range(ROUNDS):
        runs["flexgate"].append(await measure(gateway, gateway_pid))
        with floor(sim) as (address, pid):
            runs["floor"].append(await measure(address, pid))
    per_turn = statistics.median(r["per_turn"] for r in runs["flexgate"])
    print(f"CPU per frame, {ROUNDS} rounds alternating (µs; the floor: socat relaying the bytes)")
    for key, label in [
        ("upstream", f"client to upstream ({FRAMES} frames)"),
        ("turn_frame", f"lockstep turns ({per_turn:.1f} frames)"),
        ("turn", "  the same, per turn"),
    ]:
        floor_values = [r[key] for r in runs["floor"]]
        print(line(f"floor: {label}", floor_values))
        print(line(f"flexgate: {label}", [r[key] for r in runs["flexgate"]], floor_values))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        # Only the session through flexgate (run.sh's callgrind mode counts its instructions).
        asyncio.run(measure(sys.argv[1], int(sys.argv[2])))
    else:
        asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
