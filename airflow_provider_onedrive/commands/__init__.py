"""Sub-commands of ``airflow-onedrive`` (each module exposes ``register(subparsers)``)."""
