"""Transfer-engine benchmarks against the local Graph emulator (not part of the test suite).

The emulator runs in its own process; every measurement runs in a fresh subprocess so its peak RSS
(``ru_maxrss``) is its own. Each OneDriveClient figure is paired with a minimal raw-``requests`` loop doing the
same protocol in the same run.

    python benchmarks/transfer_bench.py                # full: 256 MiB + 1 GiB, 1,000 small files, 50,000 items
    python benchmarks/transfer_bench.py --quick        # CI-sized: 64 MiB, 200 files, 5,000 items
    python benchmarks/transfer_bench.py --only listing --items 100000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
SCOPES = ["https://graph.microsoft.com/.default"]


# -- the emulator process -------------------------------------------------------------------------------------
def _serve(conn: Any, temp_dir: str | None) -> None:
    from airflow_provider_onedrive.testing import GraphEmulator

    # Business drives offer delta on the root only; the tree scenario measures a folder's delta mechanics
    with GraphEmulator(temp_dir=temp_dir, folder_delta="allow") as emu:
        conn.send(
            {
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
                "authority": emu.authority,
                "ca_bundle": emu.ca_bundle,
                "graph_url": emu.graph_url,
                "drive_id": emu.drive_id,
            }
        )
        while True:
            command, arg = conn.recv()
            if command == "stop":
                return
            if command == "latency":
                emu.faults.latency = arg
            elif command == "seed":
                folder, count = arg
                emu.mkdir(folder)
                for i in range(count):
                    emu.put_file(f"{folder}/item-{i:06d}.txt", b"x")
            elif command == "tree":
                folders, per_folder, latency = arg
                for f in range(folders):
                    for i in range(per_folder):
                        emu.put_file(f"tree/d{f % 10}/sub{f:04d}/file-{i:04d}.txt", b"x")
                emu.faults.latency = latency
            elif command == "clear":
                emu.clear_requests()
            elif command == "count":
                time.sleep(0.1)
                conn.send(len([r for r in emu.requests if r.kind != "identity"]))
                continue
            conn.send("ok")


class Emulator:
    def __init__(self, temp_dir: str | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, temp_dir), daemon=True)
        self.process.start()
        self.info: dict[str, Any] = self.conn.recv()

    def call(self, command: str, arg: Any = None) -> Any:
        self.conn.send((command, arg))
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send(("stop", None))
        self.process.join(10)


# -- workers (each runs in a fresh process) --------------------------------------------------------------------
def _session(info: dict[str, Any]) -> Any:
    from airflow_provider_onedrive.graph import make_session

    session = make_session(verify=info["ca_bundle"])
    session.trust_env = False
    return session


def _token(info: dict[str, Any], session: Any) -> str:
    import msal

    app = msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=info["client_secret"],
        authority=info["authority"],
        http_client=session,
        instance_discovery=False,
    )
    return app.acquire_token_for_client(scopes=SCOPES)["access_token"]


def _client(info: dict[str, Any], **options: Any) -> Any:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.graph import GraphClient

    session = _session(info)
    token = _token(info, session)
    graph = GraphClient(lambda: token, graph_url=info["graph_url"], session=session, verify=info["ca_bundle"])
    return OneDriveClient(graph, f"drives/{info['drive_id']}", state_dir=tempfile.mkdtemp(), **options)


def _raw_upload(info: dict[str, Any], source: str, dest: str, session: Any = None) -> None:
    """The minimal protocol: createUploadSession, 10 MiB aligned fragments read by offset, no hashing."""
    session = session or _session(info)
    auth = {"Authorization": f"Bearer {_token(info, session)}"}
    base = f"{info['graph_url']}/drives/{info['drive_id']}/root:/{dest}:"
    size = os.path.getsize(source)
    url = session.post(
        f"{base}/createUploadSession", json={"item": {"@microsoft.graph.conflictBehavior": "replace"}}, headers=auth
    ).json()["uploadUrl"]
    fragment = 32 * 320 * 1024
    with open(source, "rb") as handle:
        for offset in range(0, size, fragment):
            chunk = os.pread(handle.fileno(), fragment, offset)
            end = offset + len(chunk) - 1
            response = session.put(url, data=chunk, headers={"Content-Range": f"bytes {offset}-{end}/{size}"})
            response.raise_for_status()


def _raw_download(info: dict[str, Any], path: str, target: str, *, durable: bool = False) -> None:
    """Streamed GET of the redirect target to a file; ``durable`` adds the fsync the client does before renaming."""
    session = _session(info)
    auth = {"Authorization": f"Bearer {_token(info, session)}"}
    url = f"{info['graph_url']}/drives/{info['drive_id']}/root:/{path}:/content"
    location = session.get(url, headers=auth, allow_redirects=False).headers["Location"]
    with session.get(location, stream=True) as response, open(target, "wb") as out:
        response.raise_for_status()
        for block in response.iter_content(MIB):
            out.write(block)
        if durable:
            out.flush()
            os.fsync(out.fileno())


def _raw_count(info: dict[str, Any], folder: str, collection: str) -> int:
    """Items of ``root:/folder:/children`` or ``/delta``: a bare ``$top=1000`` paging loop, nothing else."""
    session = _session(info)
    auth = {"Authorization": f"Bearer {_token(info, session)}"}
    url = f"{info['graph_url']}/drives/{info['drive_id']}/root:/{folder}:/{collection}"
    params: dict[str, Any] | None = {"$top": 1000}
    count = 0
    while url:
        page = session.get(url, params=params, headers=auth).json()
        count += len(page["value"])
        url, params = page.get("@odata.nextLink"), None
    return count


def worker(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task; report wall time and CPU time of the transfer itself and the process's peak RSS."""
    info = task["info"]
    kind = task["kind"]
    client = _client(info, max_workers=task.get("workers", 4)) if kind.startswith("client") else None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == "client_upload":
        client.upload_file(task["source"], task["dest"], conflict="replace")
    elif kind == "raw_upload":
        _raw_upload(info, task["source"], task["dest"])
    elif kind == "client_download":
        client.download_file(task["dest"], task["target"])
    elif kind == "raw_download":
        _raw_download(info, task["dest"], task["target"])
    elif kind == "raw_download_fsync":
        _raw_download(info, task["dest"], task["target"], durable=True)
    elif kind == "client_upload_folder":
        extra["files"] = len(client.upload_folder(task["source"], task["dest"], conflict="replace"))
    elif kind == "client_upload_each":
        root = Path(task["source"])
        client.mkdir(task["dest"])
        for path in sorted(root.iterdir()):
            client.upload_file(path, f"{task['dest']}/{path.name}", conflict="replace")
    elif kind == "client_download_folder":
        extra["files"] = len(client.download_folder(task["dest"], task["target"]))
    elif kind == "client_download_each":
        os.makedirs(task["target"], exist_ok=True)
        for item in list(client.ls(task["dest"], files_only=True)):
            client.download_file(item.path, os.path.join(task["target"], item.name))
    elif kind == "client_list":
        extra["items"] = sum(1 for _ in client.ls(task["dest"]))
    elif kind == "raw_list":
        extra["items"] = _raw_count(info, task["dest"], "children")
    elif kind == "raw_delta":
        extra["items"] = _raw_count(info, task["dest"], "delta")
    elif kind == "client_walk":
        extra["items"] = sum(len(d) + len(f) for _, d, f in client.walk(task["dest"]))
    else:
        raise ValueError(kind)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "kind": kind,
        "seconds": round(elapsed, 3),
        "cpu_s": round(cpu, 3),
        "rss_mib": round(peak, 1),
        "rss_before_mib": round(rss_before, 1),
        **extra,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(task: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(task)], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"worker {task['kind']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- scenarios -------------------------------------------------------------------------------------------------
def make_file(path: Path, size: int) -> None:
    block = os.urandom(8 * MIB)
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, len(block))
            handle.write(block[:n])
            left -= n


def bench_big(emu: Emulator, tmp: Path, size_mib: int, repeat: int) -> list[dict[str, Any]]:
    """Raw loop and client alternately (ABBA order, ``sync`` before each run so neither inherits the other's
    dirty pages), after one discarded warm-up round. Each kind reports its fastest run, every run's wall and CPU
    seconds and their medians; a ``ratio`` row per direction gives client / raw for each adjacent pair of runs
    (downloads against the raw loop with the client's fsync) and their median, which the VM's swings between
    rounds affect far less than comparing bests or medians taken separately."""
    source = tmp / f"big-{size_mib}.bin"
    make_file(source, size_mib * MIB)
    info = emu.info
    dest = f"bench/big-{size_mib}.bin"
    best: dict[str, dict[str, Any]] = {}
    ratios: dict[str, list[float]] = {"upload": [], "download": []}

    def measure(kind: str, *, keep: bool = True) -> float:
        target = tmp / f"{kind}.bin"
        os.sync()
        row = run({"info": info, "kind": kind, "source": str(source), "dest": dest, "target": str(target)})
        target.unlink(missing_ok=True)
        if not keep:
            return float(row["seconds"])
        row["runs"] = [*best.get(kind, {}).get("runs", []), row["seconds"]]
        row["cpu_runs"] = [*best.get(kind, {}).get("cpu_runs", []), row["cpu_s"]]
        if kind not in best or row["seconds"] < best[kind]["seconds"]:
            best[kind] = row
        else:
            best[kind]["runs"], best[kind]["cpu_runs"] = row["runs"], row["cpu_runs"]
        return float(row["seconds"])

    for kind in ("raw_upload", "client_upload", "raw_download", "raw_download_fsync", "client_download"):
        measure(kind, keep=False)
    for _ in range(repeat):
        for pair in (("raw_upload", "client_upload"), ("client_upload", "raw_upload")):
            times = {kind: measure(kind) for kind in pair}
            ratios["upload"].append(times["client_upload"] / times["raw_upload"])
        for group in (
            ("raw_download", "raw_download_fsync", "client_download"),
            ("client_download", "raw_download_fsync", "raw_download"),
        ):
            times = {kind: measure(kind) for kind in group}
            ratios["download"].append(times["client_download"] / times["raw_download_fsync"])
    source.unlink()
    rows = list(best.values())
    for row in rows:
        row.update(
            size_mib=size_mib,
            median_s=round(statistics.median(row["runs"]), 3),
            median_cpu_s=round(statistics.median(row["cpu_runs"]), 3),
        )
    for direction, values in ratios.items():
        rows.append(
            {
                "kind": f"ratio_{direction}",
                "size_mib": size_mib,
                "paired_ratios": [round(r, 3) for r in values],
                "median_ratio": round(statistics.median(values), 3),
            }
        )
    return rows


def bench_small(emu: Emulator, tmp: Path, count: int, latency: float, workers: int) -> list[dict[str, Any]]:
    local = tmp / "small"
    local.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (local / f"f{i:05d}.bin").write_bytes(os.urandom(10 * 1024))
    info = emu.info
    emu.call("latency", latency)
    rows = []
    try:
        for kind, dest in (("client_upload_each", "small-each"), ("client_upload_folder", "small-folder")):
            rows.append(run({"info": info, "kind": kind, "source": str(local), "dest": dest, "workers": workers}))
        for kind in ("client_download_each", "client_download_folder"):
            target = tmp / kind
            rows.append(
                run({"info": info, "kind": kind, "dest": "small-folder", "target": str(target), "workers": workers})
            )
    finally:
        emu.call("latency", 0.0)
    for row in rows:
        row.update(files=count, latency_ms=latency * 1000, workers=workers)
    return rows


def bench_listing(emu: Emulator, items: int) -> list[dict[str, Any]]:
    emu.call("seed", ("listing", items))
    rows = []
    for kind in ("raw_list", "client_list", "client_walk"):
        emu.call("clear")
        row = run({"info": emu.info, "kind": kind, "dest": "listing"})
        row["requests"] = emu.call("count")
        rows.append(row)
    return rows


def bench_tree(emu: Emulator, folders: int, per_folder: int, latency: float) -> list[dict[str, Any]]:
    """Recursive listing: concurrent children walk vs delta, with per-request latency."""
    emu.call("tree", (folders, per_folder, latency))
    rows = []
    try:
        for kind in ("raw_delta", "client_walk"):
            emu.call("clear")
            row = run({"info": emu.info, "kind": kind, "dest": "tree"})
            row.update(requests=emu.call("count"), folders=folders, per_folder=per_folder, latency_ms=latency * 1000)
            rows.append(row)
    finally:
        emu.call("latency", 0.0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--sizes", default=None, help="big-file sizes in MiB, comma-separated (default 256,1024)")
    parser.add_argument("--files", type=int, default=None, help="small files (default 1000)")
    parser.add_argument("--latency", type=float, default=0.02, help="injected latency per request, seconds")
    parser.add_argument("--workers", default="4,8", help="folder-transfer worker counts, comma-separated")
    parser.add_argument("--items", type=int, default=None, help="items in the listed folder (default 50000)")
    parser.add_argument("--repeat", type=int, default=1, help="ABBA rounds per big-file size (best run kept)")
    parser.add_argument("--only", default="big,small,listing,tree", help="scenarios to run")
    parser.add_argument(
        "--tmp-dir",
        default=None,
        help="where local files and the emulator's stored content live (e.g. /dev/shm to take the disk out)",
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sizes = [int(s) for s in (args.sizes or ("64" if args.quick else "256,1024")).split(",")]
    files = args.files or (200 if args.quick else 1000)
    items = args.items or (5000 if args.quick else 50000)
    only = set(args.only.split(","))
    emu = Emulator(args.tmp_dir)
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="onedrive-bench-", dir=args.tmp_dir) as tmp:
            if "big" in only:
                for size in sizes:
                    results += bench_big(emu, Path(tmp), size, args.repeat)
            if "small" in only:
                for workers in (int(w) for w in args.workers.split(",")):
                    results += bench_small(emu, Path(tmp) / f"w{workers}", files, args.latency, workers)
            if "listing" in only:
                results += bench_listing(emu, items)
            if "tree" in only:
                results += bench_tree(emu, 40 if args.quick else 200, 50, args.latency)
    finally:
        emu.stop()
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
