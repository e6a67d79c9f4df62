"""Run one upload in its own process (for the kill-and-resume test): ``python resume_worker.py CONFIG_JSON``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from transfer_helpers import make_client


class _Emu:
    """Just the emulator attributes make_client reads, from the parent's JSON."""

    def __init__(self, config: dict) -> None:
        self.__dict__.update(config)


def main() -> None:
    config = json.loads(sys.argv[1])
    options = {}
    if config.get("state_store"):  # a store shared by both runs (each run has its own local folder)
        from airflow_provider_onedrive.clients import upload_state_store

        options["state_store"] = upload_state_store(config["state_store"])
    client = make_client(_Emu(config["emulator"]), config["state_dir"], progress_log_min_bytes=1 << 40, **options)
    # names this run in the emulator's request log (header names are logged, values never)
    client.graph.session.headers[f"x-test-attempt-{config['attempt']}"] = "1"
    result = client.upload_file(config["source"], config["destination"])
    print(json.dumps(result.to_dict()), flush=True)


if __name__ == "__main__":
    main()
