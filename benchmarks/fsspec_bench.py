"""fsspec ``put`` / ``get`` (what pandas users call) inside a process with Airflow loaded, against raw loops.

Each measurement runs in a fresh process that first imports Airflow (as a task process has), against the emulator
in its own process. ``get`` is measured with the default durability (fsync before the rename) against a raw loop
that also fsyncs, and with ``fsync_downloads=False`` against a raw loop that does not. Client and raw runs alternate
in pairs (ABBA after a warm-up); the figures are the medians of the paired ratios of wall time and of the transfer
process's CPU time. Every run starts after ``os.sync()`` and, unless ``--overwrite``, each ``get`` writes to a path
that does not exist yet.

    python benchmarks/fsspec_bench.py                     # 256 MiB and 1 GiB, 6 pairs each
    python benchmarks/fsspec_bench.py --sizes 64 --pairs 1 --tmp-dir /dev/shm
    python benchmarks/fsspec_bench.py --emulator-dir /dev/shm   # local files on disk, the server's off it
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MIB = 1024 * 1024

CHILD = """
import json, sys, tempfile, time
import airflow, airflow.sdk  # a task process has Airflow loaded
sys.path.insert(0, {bench!r})
from transfer_bench import _raw_download, _raw_upload, _session, _token
from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.fs import OneDriveFileSystem
from airflow_provider_onedrive.graph import GraphClient

info, kind, local, remote = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
durable = sys.argv[5] == "1"
started, cpu = time.perf_counter(), time.process_time()
if kind.startswith("raw"):
    if kind == "raw-put":
        _raw_upload(info, local, remote)
    else:
        _raw_download(info, remote, local, durable=durable)
else:
    session = _session(info)
    token = _token(info, session)
    graph = GraphClient(lambda: token, graph_url=info["graph_url"], session=session, verify=info["ca_bundle"])
    client = OneDriveClient(
        graph, "drives/" + info["drive_id"], state_dir=tempfile.mkdtemp(), fsync_downloads=durable
    )
    fs = OneDriveFileSystem(client=client, skip_instance_cache=True)
    if kind == "put":
        fs.put_file(local, remote)
    else:
        fs.get_file(remote, local)
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}}))
"""


#: Whether a ``get`` writes to a path that already holds the file (the raw loop then truncates and rewrites that
#: inode in place, the client writes a new file and renames it over) or to a fresh path (both write a new file).
OVERWRITE = False


def run(info: dict, kind: str, local: str, remote: str, durable: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one transfer in a fresh process."""
    child = CHILD.format(bench=str(Path(__file__).parent))
    if "get" in kind and not OVERWRITE and os.path.exists(local):
        os.unlink(local)
    os.sync()  # the previous run's writeback does not land in this one's timing
    command = [sys.executable, "-c", child, json.dumps(info), kind, local, remote, "1" if durable else "0"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), float(result["cpu"])


def paired(info: dict, client: tuple, raw: tuple, pairs: int) -> dict[str, list[float]]:
    """Ratios client/raw of wall and of CPU time from ABBA pairs, after one discarded warm-up of each."""
    run(info, *client)
    run(info, *raw)
    ratios: dict[str, list[float]] = {"ratios": [], "cpu_ratios": [], "client_s": [], "raw_s": []}
    for i in range(pairs):
        if i % 2 == 0:
            c, r = run(info, *client), run(info, *raw)
        else:
            r, c = run(info, *raw), run(info, *client)
        ratios["ratios"].append(c[0] / r[0])
        ratios["cpu_ratios"].append(c[1] / r[1])
        ratios["client_s"].append(c[0])
        ratios["raw_s"].append(r[0])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,1024", help="sizes in MiB")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--tmp-dir", default=None, help="where local files go (e.g. /dev/shm)")
    parser.add_argument(
        "--emulator-dir",
        default=None,
        help="where the emulator keeps its blobs (default: with the local files). Graph's storage is never the "
        "worker's disk: /dev/shm here keeps the emulator's writes off the disk the client is measured on",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="each get replaces the previous get's file (default: a fresh path)"
    )
    args = parser.parse_args()
    global OVERWRITE
    OVERWRITE = args.overwrite
    from transfer_bench import Emulator

    work = Path(tempfile.mkdtemp(prefix="onedrive-fsspec-bench-", dir=args.tmp_dir))
    blobs = Path(tempfile.mkdtemp(prefix="onedrive-fsspec-emulator-", dir=args.emulator_dir or work))
    emulator = Emulator(str(blobs))
    info = emulator.info
    rows = []
    try:
        for mib in (int(s) for s in args.sizes.split(",")):
            source = work / f"src-{mib}.bin"
            with open(source, "wb") as handle:
                for _ in range(mib):
                    handle.write(os.urandom(MIB))
            out = str(work / f"out-{mib}.bin")
            put = paired(
                info,
                ("put", str(source), f"b/{mib}.bin", True),
                ("raw-put", str(source), f"b/r{mib}.bin", True),
                args.pairs,
            )
            rows.append({"mib": mib, "what": "put", **put})
            for durable in (True, False):
                get = paired(
                    info, ("get", out, f"b/{mib}.bin", durable), ("raw-get", out, f"b/{mib}.bin", durable), args.pairs
                )
                rows.append({"mib": mib, "what": f"get, fsync {'on' if durable else 'off'}", **get})
            source.unlink()
            for row in rows[-3:]:
                print(json.dumps(row), flush=True)
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)  # gigabytes, perhaps in /dev/shm
        shutil.rmtree(blobs, ignore_errors=True)
    print()
    print(
        "| size | transfer | wall, client / raw (median of pairs) | pairs, low-high | CPU, client / raw (median) "
        "| client / raw median s |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        wall, cpu = row["ratios"], row["cpu_ratios"]
        seconds = f"{statistics.median(row['client_s']):.2f} / {statistics.median(row['raw_s']):.2f}"
        print(
            f"| {row['mib']} MiB | {row['what']} | {statistics.median(wall):.2f}x | {min(wall):.2f}-{max(wall):.2f} "
            f"| {statistics.median(cpu):.2f}x | {seconds} |"
        )


if __name__ == "__main__":
    main()
