"""Child process of ``airflow-onedrive demo``: run DAGs with ``dag.test()``; print ``DAG <id> <state>`` lines."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from airflow.models import DagBag

    folder, *dag_ids = argv
    bag = DagBag(folder)
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"import error in {path}: {error}", file=sys.stderr)
    failures = 0
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            print(f"DAG {dag_id} not-found", flush=True)
            failures += 1
            continue
        state = str(dag.test().state)
        failures += state != "success"
        print(f"DAG {dag_id} {state}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
