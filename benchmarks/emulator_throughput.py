"""Loopback throughput of the Graph emulator: upload-session fragments in and streamed downloads out.

Run: ``.venv/bin/python benchmarks/emulator_throughput.py --size-mib 512`` (add ``--json`` for machine output).
Measures the emulator plus a plain ``requests`` client on the same machine, over https and over the plain-HTTP
Graph listener (``graph_tls=False``); the client's own work (TLS, copying) is part of the figure.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from airflow_provider_onedrive.testing import GraphEmulator

MIB = 1024 * 1024


def _token(emu: GraphEmulator) -> str:
    response = emu.http_session().post(
        f"{emu.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]


def measure(graph_tls: bool, size: int, fragment: int, temp_dir: str | None = None) -> dict[str, Any]:
    """Upload ``size`` bytes through an upload session in ``fragment``-byte PUTs, then download them."""
    block = bytes(range(256)) * (fragment // 256)
    with GraphEmulator(graph_tls=graph_tls, temp_dir=temp_dir) as emu:
        session = emu.http_session()
        headers = {"Authorization": f"Bearer {_token(emu)}"}
        drive = f"{emu.graph_url}/drives/{emu.drive_id}"
        created = session.post(
            f"{drive}/root:/bench.bin:/createUploadSession",
            headers=headers,
            json={"item": {"@microsoft.graph.conflictBehavior": "replace", "fileSize": size}},
        )
        upload_url = created.json()["uploadUrl"]
        started = time.perf_counter()
        offset = 0
        while offset < size:
            chunk = block[: min(fragment, size - offset)]
            end = offset + len(chunk) - 1
            response = session.put(upload_url, data=chunk, headers={"Content-Range": f"bytes {offset}-{end}/{size}"})
            assert response.status_code in (200, 201, 202), response.text
            offset = end + 1
        upload_seconds = time.perf_counter() - started
        item = response.json()
        location = session.get(f"{drive}/items/{item['id']}/content", headers=headers, allow_redirects=False)
        started = time.perf_counter()
        received = 0
        with session.get(location.headers["Location"], stream=True) as download:
            for piece in download.iter_content(MIB):
                received += len(piece)
        download_seconds = time.perf_counter() - started
        assert received == size == item["size"]
    return {
        "transport": "https" if graph_tls else "http",
        "temp_dir": temp_dir or "system default",
        "size_mib": size / MIB,
        "fragment_mib": fragment / MIB,
        "upload_mib_s": round(size / MIB / upload_seconds, 1),
        "download_mib_s": round(size / MIB / download_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--fragment-mib", type=float, default=10, help="must give a multiple of 320 KiB")
    parser.add_argument("--temp-dir", help="where the emulator spills content (default: the system temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fragment = int(args.fragment_mib * MIB) // (320 * 1024) * (320 * 1024)
    results = [measure(tls, args.size_mib * MIB, fragment, args.temp_dir) for tls in (True, False)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(
            f"{r['transport']:5}  {r['size_mib']:.0f} MiB, {r['fragment_mib']:.2f} MiB fragments: "
            f"upload {r['upload_mib_s']} MiB/s, download {r['download_mib_s']} MiB/s"
        )


if __name__ == "__main__":
    main()
