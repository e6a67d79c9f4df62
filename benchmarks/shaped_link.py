"""Transfers over a shaped link: an HTTP CONNECT proxy that caps every connection's rate and delays it.

Real links cap each TCP stream (per-connection throughput limits, latency), which loopback cannot show. The proxy
here (loopback only) gives every tunnelled connection, in each direction, its own rate cap with no burst credit
after idle, plus a one-way delay. The client reaches the emulator through it with its ``proxies`` option, so
Graph, the download host and the upload host are all shaped. Compared, on one emulator in one run:

- download: a raw single-stream GET, raw 4-stream ``Range`` requests into one file, and the client with
  1, 2, 4 and 8 streams;
- upload: a raw single-stream upload session and the client (uploads are one session per file: fragments in order).

    python benchmarks/shaped_link.py                       # 256 MiB at 80 Mbit/s and 20 ms per connection
    python benchmarks/shaped_link.py --size-mib 48 --mbit 80 --delay-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from transfer_bench import Emulator, _raw_upload, _session, _token

MIB = 1024 * 1024


# -- the shaping proxy (its own process) ---------------------------------------------------------------------
async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float, delay: float) -> None:
    """Copy one direction: each chunk leaves when the connection's rate allows (no credit for idle time), and
    arrives ``delay`` seconds later."""
    loop = asyncio.get_running_loop()
    next_free = loop.time()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            when, data = await queue.get()
            if not data:
                break
            pause = when - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(64 * 1024):
            now = loop.time()
            next_free = max(next_free, now) + len(data) / rate
            queue.put_nowait((next_free + delay, data))
            if next_free - now > 0.05:  # do not read far ahead of the cap (TCP backpressure to the sender)
                await asyncio.sleep(next_free - now - 0.05)
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait((0.0, b""))
        await asyncio.gather(sender, return_exceptions=True)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float, delay: float) -> None:
    try:
        await _tunnel(reader, writer, rate, delay)
    except (asyncio.CancelledError, ConnectionError, OSError):
        writer.close()  # the proxy is stopping, or a side hung up


async def _tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float, delay: float) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return
    method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
    host, _, port = target.rpartition(":")
    if method != "CONNECT" or host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")  # loopback targets only
        writer.close()
        return
    upstream_reader, upstream_writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(
        _pump(reader, upstream_writer, rate, delay), _pump(upstream_reader, writer, rate, delay), return_exceptions=True
    )


def _serve_proxy(conn: Any, mbit: float, delay_ms: float) -> None:
    async def main() -> None:
        rate = mbit * 1_000_000 / 8
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, rate, delay_ms / 1000), "127.0.0.1", 0, limit=1 << 20
        )
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop

    asyncio.run(main())


class ShapingProxy:
    def __init__(self, mbit: float, delay_ms: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve_proxy, args=(child, mbit, delay_ms), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{self.conn.recv()}"

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(10)


# -- what is measured ----------------------------------------------------------------------------------------
def _shaped_session(info: dict[str, Any], proxy: str) -> Any:
    session = _session(info)
    session.proxies.update({"https": proxy, "http": proxy})
    return session


def _download_url(info: dict[str, Any], session: Any, path: str) -> tuple[str, int]:
    auth = {"Authorization": f"Bearer {_token(info, session)}"}
    base = f"{info['graph_url']}/drives/{info['drive_id']}/root:/{path}"
    size = session.get(base, headers=auth).json()["size"]
    response = session.get(f"{base}:/content", headers=auth, allow_redirects=False)
    return response.headers["Location"], size


def raw_download(info: dict[str, Any], proxy: str, path: str, target: str, streams: int) -> None:
    """The minimal protocol: the redirect target fetched by ``streams`` Range requests into one file."""
    session = _shaped_session(info, proxy)
    url, size = _download_url(info, session, path)
    with open(target, "wb") as handle:
        os.ftruncate(handle.fileno(), size)
        fd = handle.fileno()
        chunk = -(-size // streams)

        def fetch(start: int) -> None:
            end = min(start + chunk, size) - 1
            response = session.get(url, headers={"Range": f"bytes={start}-{end}"}, stream=True)
            pos = start
            for block in response.raw.stream(MIB, decode_content=False):
                os.pwrite(fd, block, pos)
                pos += len(block)

        threads = [threading.Thread(target=fetch, args=(start,)) for start in range(0, size, chunk)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def raw_upload(info: dict[str, Any], proxy: str, source: str, dest: str) -> None:
    """The raw single-stream upload session of transfer_bench, through the shaping proxy."""
    _raw_upload(info, source, dest, session=_shaped_session(info, proxy))


def client(info: dict[str, Any], proxy: str, **options: Any) -> Any:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.graph import GraphClient

    session = _shaped_session(info, proxy)
    token = _token(info, session)
    graph = GraphClient(lambda: token, graph_url=info["graph_url"], session=session, verify=info["ca_bundle"])
    return OneDriveClient(
        graph, f"drives/{info['drive_id']}", state_dir=tempfile.mkdtemp(), multi_stream_cutoff=MIB, **options
    )


def timed(func: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    func(*args, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--mbit", type=float, default=80.0, help="rate cap of every connection, each direction")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay of every connection")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="onedrive-shaped-"))
    source = work / "payload.bin"
    source.write_bytes(os.urandom(args.size_mib * MIB))
    emulator = Emulator(str(work))
    proxy = ShapingProxy(args.mbit, args.delay_ms)
    info = emulator.info
    rows: list[dict[str, Any]] = []
    try:
        up = client(info, proxy.url)
        rows.append({"what": "client upload", "s": timed(up.upload_file, source, "shaped/up.bin", conflict="replace")})
        rows.append(
            {"what": "raw upload, 1 stream", "s": timed(raw_upload, info, proxy.url, str(source), "shaped/raw.bin")}
        )
        for streams in (1, 4):
            seconds = timed(raw_download, info, proxy.url, "shaped/up.bin", str(work / f"raw{streams}.bin"), streams)
            rows.append({"what": f"raw download, {streams} stream(s)", "s": seconds})
        for streams in (1, 2, 4, 8):
            down = client(info, proxy.url, multi_stream_chunk=max(MIB, args.size_mib * MIB // (4 * streams)))
            target = work / f"client{streams}.bin"
            seconds = timed(down.download_file, "shaped/up.bin", target, streams=streams)
            assert target.stat().st_size == args.size_mib * MIB
            rows.append({"what": f"client download, {streams} stream(s)", "s": seconds})
    finally:
        proxy.stop()
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)  # gigabytes of payload and downloads
    baseline_down = next(r["s"] for r in rows if r["what"] == "raw download, 1 stream(s)")
    baseline_up = next(r["s"] for r in rows if r["what"] == "raw upload, 1 stream")
    print(f"{args.size_mib} MiB, {args.mbit:g} Mbit/s and {args.delay_ms:g} ms one way per connection")
    print("| transfer | seconds | speed-up over one raw stream |")
    print("| --- | --- | --- |")
    for row in rows:
        base = baseline_up if "upload" in row["what"] else baseline_down
        print(f"| {row['what']} | {row['s']:.1f} | {base / row['s']:.2f}x |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
