"""OneDriveClient side by side with peer libraries and a raw-``requests`` loop, against one Graph emulator.

The emulator serves in this process's threads (this process only starts workers and checks bytes between
runs); every measured run is a fresh worker process timing only the transfer (imports, token and client setup
come before the clock starts). Our side and the raw loop run in this interpreter; each peer runs in its own
venv, made on first use under ``--peers-dir`` (default ``/tmp/onedrive-peers/<name>/``) with pinned versions:

    python benchmarks/peers_bench.py                      # 256 MiB, 300 x 2 KiB, 5,000 items, 3 rounds
    python benchmarks/peers_bench.py --quick --peers none # 8 MiB, 30 files, 500 items, 1 round, no peers

How each peer is pointed at the emulator (in the peer's own process; no transfer logic is touched):

* O365: ``protocol.protocol_url`` / ``protocol.service_url`` of its ``MSGraphProtocol`` are set to the
  emulator's Graph URL (the class hard-codes graph.microsoft.com), and ``Connection._msal_client`` is replaced by
  an MSAL ``ConfidentialClientApplication`` for the emulator's authority with ``instance_discovery=False`` and
  O365's token cache, a ``MemoryTokenBackend`` (O365 hard-codes login.microsoftonline.com); the CA via
  ``REQUESTS_CA_BUNDLE``. Its ``requests_delay`` (a documented option, 200 ms between requests by default) is 0
  unless ``--o365-requests-delay-ms`` says otherwise.
* msgraphfs: its documented ``oauth2_client_params`` carry the emulator's token endpoint and ``verify`` (the CA
  bundle); the instance's ``drive_url`` attribute is set to the emulator's ``/v1.0/drives/{id}``.
* rclone (Debian's package, when on PATH): ``HTTPS_PROXY`` points at :class:`GraphProxy`, which answers for
  graph.microsoft.com under a CA of this run (``--ca-cert``); the remote comes from ``RCLONE_CONFIG_EMU_*``
  with an access token from the emulator. rclone sends its bearer token on upload-session PUTs, so with rclone
  among the peers the emulator runs with ``reject_authorization_on_upload=False``.

Downloads: ours fsyncs each file by default (``fsync_downloads``); it runs both with and without. The raw loop
runs both; neither peer fsyncs, so peers compare with ``ours_nofsync`` and ``raw``.

A peer's run that fails is recorded with its error and the benchmark goes on: msgraphfs's writes of more than
one block (10 MiB) send ``Content-Range: bytes a-b/*`` (total unknown, ``deferCommit``) with its bearer token to
the upload URL, which the emulator answers with 401 (Graph: a PUT with Authorization "may" give 401) and, with
that check off, 400 (the emulator takes ``bytes a-b/total`` only).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
PEERS = {"o365": ["O365==2.1.10"], "msgraphfs": ["msgraphfs==0.5"]}
CASES = ("upload_big", "download_big", "upload_small", "download_small", "list")
# which variants of each tool run each case; downloads add the durability variants
VARIANTS = {
    "raw": {"upload_big": ["raw"], "upload_small": ["raw"], "list": ["raw"]},
    "ours": {"upload_big": ["ours"], "upload_small": ["ours"], "list": ["ours"]},
}
for _case in ("download_big", "download_small"):
    VARIANTS["raw"][_case] = ["raw", "raw_fsync"]
    VARIANTS["ours"][_case] = ["ours_fsync", "ours_nofsync"]
SAME_DURABILITY = {"ours": "ours_nofsync"}  # peers do not fsync


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(root.iterdir()) if p.is_file()}


# -- workers: ours and the raw loop (this interpreter) ------------------------------------------------------------
def _ours_raw_worker(task: dict[str, Any]) -> Any:
    sys.path.insert(0, str(HERE))
    from transfer_bench import _client, _raw_count, _raw_download, _raw_upload, _session, _token

    info, case, variant = task["info"], task["case"], task["variant"]
    if variant.startswith("ours"):
        client = _client(info, fsync_downloads=variant != "ours_nofsync")
        run = {
            "upload_big": lambda: client.upload_file(task["source"], task["dest"], conflict="replace"),
            "download_big": lambda: client.download_file(task["dest"], task["target"]),
            "upload_small": lambda: client.upload_folder(task["source"], task["dest"], conflict="replace"),
            "download_small": lambda: client.download_folder(task["dest"], task["target"]),
            "list": lambda: sum(1 for _ in client.ls(task["dest"])),
        }[case]
        return run
    session = _session(info)
    auth = {"Authorization": f"Bearer {_token(info, session)}"}
    drive = f"{info['graph_url']}/drives/{info['drive_id']}"

    def upload_small() -> None:
        for path in sorted(Path(task["source"]).iterdir()):
            url = f"{drive}/root:/{task['dest']}/{path.name}:/content"
            session.put(url, data=path.read_bytes(), headers=auth).raise_for_status()

    def download_small() -> None:
        os.makedirs(task["target"], exist_ok=True)
        url, params = f"{drive}/root:/{task['dest']}:/children", {"$top": 1000}
        while url:
            page = session.get(url, params=params, headers=auth).json()
            for item in page["value"]:
                with session.get(item["@microsoft.graph.downloadUrl"], stream=True) as response:
                    response.raise_for_status()
                    with open(os.path.join(task["target"], item["name"]), "wb") as out:
                        for block in response.iter_content(MIB):
                            out.write(block)
                        if variant == "raw_fsync":
                            out.flush()
                            os.fsync(out.fileno())
            url, params = page.get("@odata.nextLink"), None

    return {
        "upload_big": lambda: _raw_upload(info, task["source"], task["dest"], session=session),
        "download_big": lambda: _raw_download(info, task["dest"], task["target"], durable=variant == "raw_fsync"),
        "upload_small": upload_small,
        "download_small": download_small,
        "list": lambda: _raw_count(info, task["dest"], "children"),
    }[case]


# -- workers: peers (each in its own venv; only the peer and stdlib are importable) --------------------------------
def _o365_worker(task: dict[str, Any]) -> Any:
    import msal
    from O365 import Account, MSGraphProtocol
    from O365.utils.token import MemoryTokenBackend

    info, case = task["info"], task["case"]
    protocol = MSGraphProtocol(api_version="v1.0")
    origin = info["graph_url"].rsplit("/v1.0", 1)[0] + "/"
    # no trailing slash: O365 joins service_url and a resource of "/drives/{id}" (from a Drive) as "v1.0//drives"
    protocol.protocol_url, protocol.service_url = origin, info["graph_url"]
    account = Account(
        (info["client_id"], info["client_secret"]),
        auth_flow_type="credentials",
        tenant_id=info["tenant_id"],
        protocol=protocol,
        requests_delay=task["o365_requests_delay_ms"],
        token_backend=MemoryTokenBackend(),  # its default writes o365_token.txt into the working directory
    )
    account.con._msal_client = msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=info["client_secret"],
        authority=info["authority"],
        token_cache=account.con.token_backend,
        instance_discovery=False,
    )
    assert account.authenticate()
    drive = account.storage().get_drive(info["drive_id"])

    def upload_big() -> None:
        folder = drive.get_item_by_path("/" + task["dest"].rsplit("/", 1)[0])
        assert folder.upload_file(task["source"], item_name=task["dest"].rsplit("/", 1)[1])

    def download_big() -> None:
        target = Path(task["target"])
        assert drive.get_item_by_path("/" + task["dest"]).download(to_path=target.parent, name=target.name)

    def upload_small() -> None:
        folder = drive.get_item_by_path("/" + task["dest"])
        for path in sorted(Path(task["source"]).iterdir()):
            assert folder.upload_file(path)

    def download_small() -> None:
        os.makedirs(task["target"], exist_ok=True)
        for item in drive.get_item_by_path("/" + task["dest"]).get_items():
            assert item.download(to_path=task["target"])

    return {
        "upload_big": upload_big,
        "download_big": download_big,
        "upload_small": upload_small,
        "download_small": download_small,
        "list": lambda: sum(1 for _ in drive.get_item_by_path("/" + task["dest"]).get_items()),
    }[case]


def _msgraphfs_worker(task: dict[str, Any]) -> Any:
    from msgraphfs import MSGDriveFS

    info, case = task["info"], task["case"]
    fs = MSGDriveFS(
        drive_id=info["drive_id"],
        oauth2_client_params={
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "token_endpoint": f"{info['authority']}/oauth2/v2.0/token",
            "scope": "https://graph.microsoft.com/.default",
            "grant_type": "client_credentials",
            "verify": info["ca_bundle"],
        },
    )
    fs.drive_url = f"{info['graph_url']}/drives/{info['drive_id']}"
    fs.ls("/")  # the token and the connection, before the clock

    def download_small() -> None:
        os.makedirs(task["target"], exist_ok=True)
        fs.get(f"/{task['dest']}/*", task["target"] + "/")

    return {
        "upload_big": lambda: fs.put_file(task["source"], "/" + task["dest"]),
        "download_big": lambda: fs.get_file("/" + task["dest"], task["target"]),
        "upload_small": lambda: fs.put(task["source"] + "/*", f"/{task['dest']}/"),
        "download_small": download_small,
        "list": lambda: len(fs.ls("/" + task["dest"], detail=True)),
    }[case]


def _rclone_worker(task: dict[str, Any]) -> Any:
    """rclone's own process per run (its start-up is inside the time); Graph calls go through the local proxy."""
    import datetime

    sys.path.insert(0, str(HERE))
    from transfer_bench import _session, _token

    info, case = task["info"], task["case"]
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=50)
    token = {"access_token": _token(info, _session(info)), "token_type": "Bearer", "expiry": expiry.isoformat()}
    env = {
        **os.environ,
        "RCLONE_CONFIG_EMU_TYPE": "onedrive",
        "RCLONE_CONFIG_EMU_TOKEN": json.dumps(token),
        "RCLONE_CONFIG_EMU_DRIVE_ID": info["drive_id"],
        "RCLONE_CONFIG_EMU_DRIVE_TYPE": "business",
        "HTTPS_PROXY": task["proxy"],
    }
    base = ["rclone", "--ca-cert", task["rclone_ca"], "--config", os.devnull]
    command = {
        "upload_big": ["copyto", task.get("source", ""), f"emu:{task['dest']}"],
        "download_big": ["copyto", f"emu:{task['dest']}", task.get("target", "")],
        "upload_small": ["copy", task.get("source", ""), f"emu:{task['dest']}"],
        "download_small": ["copy", f"emu:{task['dest']}", task.get("target", "")],
        "list": ["lsf", f"emu:{task['dest']}"],
    }[case]

    def run() -> Any:
        out = subprocess.run(base + command, env=env, capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        return len(out.stdout.splitlines()) if case == "list" else None

    return run


WORKERS = {
    "rclone": _rclone_worker,
    "raw": _ours_raw_worker,
    "ours": _ours_raw_worker,
    "o365": _o365_worker,
    "msgraphfs": _msgraphfs_worker,
}


def worker(task: dict[str, Any]) -> dict[str, Any]:
    run = WORKERS[task["tool"]](task)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    row = {"seconds": elapsed, "cpu_s": usage.ru_utime + usage.ru_stime - cpu_before}
    if task["case"] == "list":
        row["items"] = result if isinstance(result, int) else len(result)
    return row


# -- peers' venvs ---------------------------------------------------------------------------------------------------
def peer_python(name: str, peers_dir: Path) -> tuple[str, str]:
    """The venv's python for ``name`` (made and installed on first use) and the peer's installed version."""
    venv = peers_dir / name
    python = venv / "bin" / "python"
    dist = PEERS[name][0].split("==")[0]
    probe = [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode:
        subprocess.run([sys.executable if sys.prefix == sys.base_prefix else "python3", "-m", "venv", str(venv)])
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS[name]], check=True)
    return str(python), subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


# -- rclone: a loopback CONNECT proxy that answers for graph.microsoft.com ------------------------------------------
class GraphProxy:
    """rclone's OneDrive backend has no Graph base-URL option: with ``HTTPS_PROXY`` pointing here, a CONNECT to
    ``graph.microsoft.com:443`` is answered with TLS under a certificate for that name from a CA of this run (the
    one rclone is given with ``--ca-cert``, beside the emulator's), and its bytes are relayed to the emulator's
    Graph listener over TLS. Only 127.0.0.1; other hosts are refused. Loopback upload and download URLs never come
    here (Go sends loopback requests directly)."""

    def __init__(self, emu: Any, directory: Path) -> None:
        import socket
        import ssl
        import threading

        from airflow_provider_onedrive.testing.tls import make_server_certificates

        directory.mkdir(parents=True, exist_ok=True)
        certificates = make_server_certificates(directory, extra_names=("graph.microsoft.com",))
        self.ca_bundle = str(directory / "rclone-ca.pem")
        Path(self.ca_bundle).write_bytes(certificates.ca_bundle.read_bytes() + Path(emu.ca_bundle).read_bytes())
        self._server_context = certificates.server_context()
        self._client_context = ssl.create_default_context(cafile=emu.ca_bundle)
        origin = emu.graph_origin.split("://", 1)[1]
        self._upstream = (origin.rsplit(":", 1)[0], int(origin.rsplit(":", 1)[1]))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: Any) -> None:
        import socket

        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            if not head.startswith(b"CONNECT graph.microsoft.com:443 "):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with (
                self._server_context.wrap_socket(conn, server_side=True) as inner,
                self._client_context.wrap_socket(
                    socket.create_connection(self._upstream), server_hostname=self._upstream[0]
                ) as upstream,
            ):
                # the emulator writes its URLs from the Host header: name its own listener there
                host = f"\r\nHost: {self._upstream[0]}:{self._upstream[1]}\r\n".encode()
                self._relay(inner, upstream, (b"\r\nHost: graph.microsoft.com\r\n", host))

    @staticmethod
    def _relay(inner: Any, upstream: Any, replace: tuple[bytes, bytes]) -> None:
        """One thread for both directions (an SSL socket must not be read and written from two threads)."""
        import select

        peers = {inner: upstream, upstream: inner}
        with contextlib.suppress(OSError):
            while True:
                ready = [sock for sock in peers if sock.pending()] or select.select(list(peers), [], [], 120)[0]
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data.replace(*replace) if sock is inner else data)

    def close(self) -> None:
        self._listener.close()


# -- orchestration --------------------------------------------------------------------------------------------------
def run_worker(python: str, task: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [python, __file__, "--worker", json.dumps(task)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tempfile.gettempdir() if task["tool"] not in ("raw", "ours") else None,
    )
    if out.returncode:
        raise RuntimeError(f"{task['variant']} {task['case']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(args: argparse.Namespace) -> dict[str, Any]:
    from airflow_provider_onedrive.testing import GraphEmulator

    sys.path.insert(0, str(HERE))
    from transfer_bench import make_file

    size = args.size_mib * MIB
    peers = [] if args.peers == "none" else args.peers.split(",")
    pythons = {"raw": sys.executable, "ours": sys.executable}
    versions = {"python": sys.version.split()[0]}
    for name in peers:
        if name == "rclone":  # a Go binary (Debian's rclone package), run from our interpreter's worker
            out = subprocess.run(["rclone", "version"], capture_output=True, text=True, check=True)
            pythons[name], versions[name] = sys.executable, out.stdout.split()[1]
        else:
            pythons[name], versions[name] = peer_python(name, Path(args.peers_dir))
    tools = ["raw", "ours", *peers]
    results: dict[str, dict[str, dict[str, Any]]] = {case: {} for case in CASES}
    with (
        tempfile.TemporaryDirectory(prefix="onedrive-peers-bench-", dir=args.tmp_dir) as tmp_name,
        # rclone sends its bearer token on upload-session PUTs, which the emulator answers with 401 by default
        GraphEmulator(temp_dir=args.tmp_dir, reject_authorization_on_upload="rclone" not in peers) as emu,
    ):
        tmp = Path(tmp_name)
        info = emu.info()
        info["client_secret"] = emu.client_secret
        env = {**os.environ, "REQUESTS_CA_BUNDLE": emu.ca_bundle, "SSL_CERT_FILE": emu.ca_bundle}
        peer_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        proxy = GraphProxy(emu, tmp / "proxy") if "rclone" in peers else None
        big = tmp / "big.bin"
        make_file(big, size)
        big_sha = _sha(big)
        small = tmp / "small"
        small.mkdir()
        for i in range(args.files):
            (small / f"f{i:05d}.bin").write_bytes(os.urandom(args.file_kib * 1024))
        small_digest = _tree_digest(small)
        emu.put_file("seed/big.bin", big.read_bytes())
        for path in sorted(small.iterdir()):
            emu.put_file(f"seed/small/{path.name}", path.read_bytes())
        for i in range(args.items):
            emu.put_file(f"seed/listing/item-{i:06d}.txt", b"x")
        for round_no in range(args.repeat):
            for case in CASES:
                order = tools if round_no % 2 == 0 else tools[::-1]
                for tool in order:
                    for variant in VARIANTS.get(tool, {}).get(case, [tool]):
                        tag = f"{variant}-{round_no}"
                        task: dict[str, Any] = {"info": info, "tool": tool, "variant": variant, "case": case}
                        task["o365_requests_delay_ms"] = args.o365_requests_delay_ms
                        if proxy:
                            task.update(proxy=proxy.url, rclone_ca=proxy.ca_bundle)
                        if case == "upload_big":
                            emu.mkdir(f"up/{tag}")
                            task.update(source=str(big), dest=f"up/{tag}/big.bin")
                        elif case == "upload_small":
                            emu.mkdir(f"up/{tag}-small")
                            task.update(source=str(small), dest=f"up/{tag}-small")
                        elif case == "download_big":
                            task.update(dest="seed/big.bin", target=str(tmp / f"{tag}.bin"))
                        elif case == "download_small":
                            task.update(dest="seed/small", target=str(tmp / f"{tag}-small"))
                        else:
                            task.update(dest="seed/listing")
                        os.sync()
                        entry = results[case].setdefault(variant, {"tool": tool, "runs": [], "cpu_runs": []})
                        try:
                            row = run_worker(
                                pythons[tool], task, env if tool in ("raw", "ours", "rclone") else peer_env
                            )
                        except RuntimeError as error:
                            lines = str(error).strip().splitlines()
                            message = next((x for x in reversed(lines) if "Error" in x), lines[-1])
                            entry.setdefault("errors", []).append(message.strip()[:200])
                            print(f"{case:15} {variant:13} failed: {entry['errors'][-1]}", file=sys.stderr)
                            _cleanup(emu, case, task)
                            continue
                        check = _check(emu, case, task, big_sha, small_digest, args.items, row)
                        entry["runs"].append(round(row["seconds"], 4))
                        entry["cpu_runs"].append(round(row["cpu_s"], 4))
                        entry["byte_exact"] = entry.get("byte_exact", True) and check
                        print(f"{case:15} {variant:13} {row['seconds']:8.3f} s  exact={check}", file=sys.stderr)
                        _cleanup(emu, case, task)
    for case_rows in results.values():
        for variant in [v for v, e in case_rows.items() if not e["runs"]]:
            case_rows[variant].update(median_s=None, min_s=None, byte_exact=None)
        for entry in (e for e in case_rows.values() if e["runs"]):
            entry["median_s"] = round(statistics.median(entry["runs"]), 4)
            entry["min_s"] = min(entry["runs"])
    ratios: dict[str, Any] = {}
    for case, case_rows in results.items():
        peer_rows = {v: e for v, e in case_rows.items() if e["tool"] in peers and e["median_s"] is not None}
        ours = next(v for v in case_rows if v.startswith("ours") and v != "ours_fsync") if case_rows else None
        if peer_rows and ours:
            best = min(peer_rows, key=lambda v: peer_rows[v]["median_s"])
            ratios[case] = {
                "ours": ours,
                "best_peer": best,
                "ours_over_best_peer": round(case_rows[ours]["median_s"] / peer_rows[best]["median_s"], 3),
            }
    return {
        "params": {
            "size_mib": args.size_mib,
            "files": args.files,
            "file_kib": args.file_kib,
            "items": args.items,
            "repeat": args.repeat,
            "o365_requests_delay_ms": args.o365_requests_delay_ms,
            "peers": peers,
            "load_avg_start": os.getloadavg(),
        },
        "versions": versions,
        "results": results,
        "ratios": ratios,
    }


def _check(emu: Any, case: str, task: dict, big_sha: str, small: dict[str, str], items: int, row: dict) -> bool:
    if case == "upload_big":
        return hashlib.sha256(emu.read_file(task["dest"])).hexdigest() == big_sha
    if case == "download_big":
        return _sha(Path(task["target"])) == big_sha
    if case == "upload_small":
        return {n: hashlib.sha256(emu.read_file(f"{task['dest']}/{n}")).hexdigest() for n in small} == small
    if case == "download_small":
        return _tree_digest(Path(task["target"])) == small
    return row.get("items") == items


def _cleanup(emu: Any, case: str, task: dict) -> None:
    if case.startswith("upload"):
        emu.delete(task["dest"].rsplit("/", 1)[0] if case == "upload_big" else task["dest"])
    elif case == "download_big":
        Path(task["target"]).unlink(missing_ok=True)
    elif case == "download_small":
        for path in Path(task["target"]).iterdir():
            path.unlink()
        Path(task["target"]).rmdir()


def table(report: dict[str, Any]) -> str:
    lines = ["| case | variant | median s | min s | byte-exact |", "| --- | --- | --- | --- | --- |"]
    for case, rows in report["results"].items():
        for variant, entry in sorted(rows.items(), key=lambda kv: (kv[1]["median_s"] is None, kv[1]["median_s"] or 0)):
            if entry["median_s"] is None:
                lines.append(f"| {case} | {variant} | failed | failed | {entry['errors'][0]} |")
                continue
            lines.append(
                f"| {case} | {variant} | {entry['median_s']:.3f} | {entry['min_s']:.3f} | {entry['byte_exact']} |"
            )
    if report["ratios"]:
        lines += ["", "| case | ours / best peer (medians) |", "| --- | --- |"]
        for case, ratio in report["ratios"].items():
            lines.append(f"| {case} | {ratio['ours_over_best_peer']:.2f}x ({ratio['ours']} / {ratio['best_peer']}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--peers",
        default="o365,msgraphfs" + (",rclone" if shutil.which("rclone") else ""),
        help="comma-separated peers of o365, msgraphfs, rclone (Debian's package, if installed), or 'none'",
    )
    parser.add_argument("--peers-dir", default=os.path.join(tempfile.gettempdir(), "onedrive-peers"))
    parser.add_argument("--size-mib", type=int, default=None, help="big file (default 256; quick 8)")
    parser.add_argument("--files", type=int, default=None, help="small files (default 300; quick 30)")
    parser.add_argument("--file-kib", type=int, default=2)
    parser.add_argument("--items", type=int, default=None, help="items in the listed folder (default 5000)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3; quick 1)")
    parser.add_argument(
        "--o365-requests-delay-ms",
        type=int,
        default=0,
        help="O365's Connection(requests_delay=): its default 200 ms pause between requests is a rate guard",
    )
    parser.add_argument("--tmp-dir", default=None)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    quick = args.quick
    args.size_mib = args.size_mib or (8 if quick else 256)
    args.files = args.files or (30 if quick else 300)
    args.items = args.items or (500 if quick else 5000)
    args.repeat = args.repeat or (1 if quick else 3)
    report = bench(args)
    print(table(report), file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
