"""CPU per relayed WebSocket frame: on one Realtime session through a running flexgate
(in front of `flexgate sim`), send small frames upstream (relayed, only followed for
their boundaries), then run turns whose events come back (each turn's `response.done` is
read for usage and counted), and report the gateway's CPU time (user + system, from
/proc) per frame. Run by benches/websocket/run.sh."""

import asyncio
import json
import os
import sys

import websockets

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def until_done(ws) -> None:
    while json.loads(await ws.recv())["type"] != "response.done":
        pass


async def main(gateway: str, pid: int, frames: int = 20_000, turns: int = 3_000) -> None:
    url = f"ws://{gateway}/v1/realtime?model=gpt-realtime"
    ws = await websockets.connect(url, additional_headers={"Authorization": "Bearer sk-bench"}, compression=None)
    await ws.recv()
    append = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 100})
    start = cpu_seconds(pid)
    for _ in range(frames):
        await ws.send(append)
    await ws.send(json.dumps({"type": "response.create"}))
    await until_done(ws)
    used = cpu_seconds(pid) - start
    print(f"client to upstream: {frames} frames, {used * 1e6 / frames:.1f} µs of gateway CPU each")
    start = cpu_seconds(pid)
    for _ in range(turns):
        await ws.send(json.dumps({"type": "response.create"}))
        await until_done(ws)
    used = cpu_seconds(pid) - start
    # Each turn: one frame up, three down (created, text delta, done, read for usage).
    print(f"turns: {turns} of 4 frames, {used * 1e6 / (4 * turns):.1f} µs of gateway CPU per frame")
    await ws.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
