"""Memory per idle WebSocket session: open N Realtime sessions through a running flexgate
(in front of `flexgate sim`), wait for each `session.created`, and report how much the
gateway's resident memory grew per session. Run by benches/websocket/run.sh."""

import asyncio
import sys

import websockets


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_session(url: str):
    ws = await websockets.connect(url, additional_headers={"Authorization": "Bearer sk-bench"}, compression=None)
    await ws.recv()  # session.created: the session is relayed end to end
    return ws


async def main(gateway: str, pid: int, sessions: int) -> None:
    url = f"ws://{gateway}/v1/realtime?model=gpt-realtime"
    # A few first, so allocator pools and lazily built state are not counted.
    warm = [await open_session(url) for _ in range(10)]
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    idle = [await open_session(url) for _ in range(sessions)]
    await asyncio.sleep(1)
    after = rss_kib(pid)
    print(f"{sessions} idle sessions: gateway RSS {before} -> {after} KiB, {(after - before) / sessions:.1f} KiB each")
    for ws in warm + idle:
        await ws.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
