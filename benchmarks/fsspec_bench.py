"""fsspec ``put`` / ``get`` (what pandas users call) inside a process with Airflow loaded, against raw loops.

Each measurement runs in a fresh process that first imports Airflow (as a task process has), against the emulator
in its own process. ``get`` is measured with the default durability (fsync before the rename) against a raw loop
that also fsyncs, and with ``fsync_downloads=False`` against a raw loop that does not. Client and raw runs alternate
in pairs (ABBA after a warm-up); the figure is the median of the paired ratios. Every run starts after ``os.sync()``
and, unless ``--overwrite``, each ``get`` writes to a path that does not exist yet.

    python benchmarks/fsspec_bench.py                     # 256 MiB and 1 GiB, 2 pairs each
    python benchmarks/fsspec_bench.py --sizes 64 --pairs 1 --tmp-dir /dev/shm
"""

from __future__ import annotations

import argparse
import json
import os
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
started = time.perf_counter()
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
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""


#: Whether a ``get`` writes to a path that already holds the file (the raw loop then truncates and rewrites that
#: inode in place, the client writes a new file and renames it over) or to a fresh path (both write a new file).
OVERWRITE = False


def run(info: dict, kind: str, local: str, remote: str, durable: bool) -> float:
    child = CHILD.format(bench=str(Path(__file__).parent))
    if "get" in kind and not OVERWRITE and os.path.exists(local):
        os.unlink(local)
    os.sync()  # the previous run's writeback does not land in this one's timing
    command = [sys.executable, "-c", child, json.dumps(info), kind, local, remote, "1" if durable else "0"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def paired(info: dict, client: tuple, raw: tuple, pairs: int) -> list[float]:
    """Median-ready ratios client/raw from ABBA pairs after one discarded warm-up of each."""
    run(info, *client)
    run(info, *raw)
    ratios = []
    for i in range(pairs):
        if i % 2 == 0:
            c, r = run(info, *client), run(info, *raw)
        else:
            r, c = run(info, *raw), run(info, *client)
        ratios.append(c / r)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,1024", help="sizes in MiB")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--tmp-dir", default=None, help="where local files go (e.g. /dev/shm)")
    parser.add_argument(
        "--overwrite", action="store_true", help="each get replaces the previous get's file (default: a fresh path)"
    )
    args = parser.parse_args()
    global OVERWRITE
    OVERWRITE = args.overwrite
    from transfer_bench import Emulator

    work = Path(tempfile.mkdtemp(prefix="onedrive-fsspec-bench-", dir=args.tmp_dir))
    emulator = Emulator(tempfile.mkdtemp(prefix="onedrive-fsspec-emu-", dir=args.tmp_dir))  # its blobs there too
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
            rows.append({"mib": mib, "what": "put", "ratios": put})
            for durable in (True, False):
                get = paired(
                    info, ("get", out, f"b/{mib}.bin", durable), ("raw-get", out, f"b/{mib}.bin", durable), args.pairs
                )
                rows.append({"mib": mib, "what": f"get, fsync {'on' if durable else 'off'}", "ratios": get})
            source.unlink()
            for row in rows[-3:]:
                print(json.dumps(row), flush=True)
    finally:
        emulator.stop()
    print()
    print("| size | transfer | client / raw loop (median of paired ratios) | all pairs |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        ratios = ", ".join(f"{r:.2f}" for r in row["ratios"])
        print(f"| {row['mib']} MiB | {row['what']} | {statistics.median(row['ratios']):.2f}x | {ratios} |")


if __name__ == "__main__":
    main()
