"""Peak memory of parallel ranged downloads: a 256 MiB and a 2 GiB file over 4 streams, each in a fresh process.

Memory should stay flat with size (about one 1 MiB block per stream plus the interpreter), because ranges are
written in place as they arrive and hashed without keeping them.

    python benchmarks/ranged_memory.py                      # 256 MiB and 2048 MiB, 4 streams
    python benchmarks/ranged_memory.py --sizes 64,512 --streams 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

MIB = 1024 * 1024

CHILD = """
import json, resource, sys, tempfile, time
sys.path.insert(0, {bench!r})
from transfer_bench import _session, _token
from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.graph import GraphClient

info, remote, target, streams = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
session = _session(info)
token = _token(info, session)
graph = GraphClient(lambda: token, graph_url=info["graph_url"], session=session, verify=info["ca_bundle"])
client = OneDriveClient(graph, "drives/" + info["drive_id"], state_dir=tempfile.mkdtemp())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = client.download_file(remote, target, streams=streams)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"size": result.size, "seconds": elapsed, "rss_before_kib": before, "peak_rss_kib": peak}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,2048", help="file sizes in MiB")
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()
    from transfer_bench import Emulator, _raw_upload

    work = Path(tempfile.mkdtemp(prefix="onedrive-ranged-memory-"))
    emulator = Emulator(str(work))
    rows: list[dict[str, Any]] = []
    try:
        for mib in (int(s) for s in args.sizes.split(",")):
            source = work / f"src-{mib}.bin"
            with open(source, "wb") as handle:
                for _ in range(mib):
                    handle.write(os.urandom(MIB))
            _raw_upload(emulator.info, str(source), f"mem/{mib}.bin")
            source.unlink()
            target = work / f"out-{mib}.bin"
            child = CHILD.format(bench=str(Path(__file__).parent))
            command = [sys.executable, "-c", child, json.dumps(emulator.info), f"mem/{mib}.bin", str(target)]
            done = subprocess.run([*command, str(args.streams)], capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            assert target.stat().st_size == mib * MIB == row["size"]
            target.unlink()
            rows.append({"mib": mib, **row})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| file | streams | seconds | peak RSS of the process (MiB) | of which before the download (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['mib']} MiB | {args.streams} | {r['seconds']:.2f} | {r['peak_rss_kib'] / 1024:.0f} | "
            f"{r['rss_before_kib'] / 1024:.0f} |"
        )


if __name__ == "__main__":
    main()
