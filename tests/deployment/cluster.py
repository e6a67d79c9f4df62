"""A real distributed Airflow deployment on loopback: PostgreSQL, Redis, scheduler, dag-processor, triggerer,
api-server and two Celery workers, against a Graph emulator.

Every process is started and stopped here; everything listens on 127.0.0.1. PostgreSQL and Redis come from
Debian's packages (``.ci/services`` installs them); PostgreSQL runs as the ``postgres`` user in a throwaway
cluster. The two workers have separate home and cache folders (as two machines would); the log folder is shared
by every process, the loopback stand-in for remote task logging, so workers run without their own log servers
(which would listen on every interface).

``python -m tests.deployment.cluster`` starts it for a person to look at (see docs/production.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
SUITE_DAGS = Path(__file__).resolve().with_name("dags")
POSTGRES_USER = "postgres"
WORKERS = ("worker-a", "worker-b")
ADMIN = "admin"


class DeploymentError(RuntimeError):
    """A part of the deployment did not start or did not answer; the message carries the relevant log tails."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian puts them in /usr/lib/postgresql/<major>/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise DeploymentError("PostgreSQL is not installed: run `bash .ci/services` (Debian package postgresql)")
    return versions[-1].parent


def postgres_installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/postgres"))


def redis_installed() -> bool:
    return shutil.which("redis-server") is not None


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


@dataclass
class Service:
    """One long-running process, its own session (so a kill takes its children), its output in ``log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    user: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["runuser", "-u", self.user, "--", *self.argv] if self.user else self.argv
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        try:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
            )
        finally:
            handle.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: a SIGKILL is a machine dying with its task processes."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, grace: float = 20.0) -> None:
        if not self.running:
            self.kill()  # the leader may be gone while children live on
            return
        assert self.process is not None
        self.kill(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait(10)
        self.kill()

    def describe(self) -> str:
        state = "running" if self.running else f"exited {self.process.returncode if self.process else '-'}"
        return f"--- {self.name} ({state}); last lines of {self.log}:\n{tail(self.log)}"


@dataclass
class Deployment:
    """The whole deployment. ``connections`` are Airflow connections (JSON form) given to every process."""

    connections: dict[str, dict[str, Any]]
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="onedrive-deploy-")))
    dags: Path | None = None
    worker_concurrency: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.api_port = free_port()
        self.password = secrets.token_urlsafe(12)
        self._token: str | None = None
        self.dags = self.dags or self.root / "dags"

    # -- configuration ------------------------------------------------------------------------------------
    @property
    def fernet_key(self) -> str:
        """The deployment's Fernet key (Variables and connections in the metadata DB are encrypted with it)."""
        self.base_env()
        return str(self._secrets["fernet"])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"

    def base_env(self) -> dict[str, str]:
        """The configuration every Airflow process shares (one airflow.cfg in a real deployment)."""
        from cryptography.fernet import Fernet

        if not hasattr(self, "_secrets"):
            self._secrets = {
                "fernet": Fernet.generate_key().decode(),
                "jwt": secrets.token_urlsafe(32),
                "api": secrets.token_urlsafe(32),
            }
        home = self.root / "airflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": self._secrets["fernet"],
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.deployment.worker_name.hostname",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__PARALLELISM": "128",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__SECRET_KEY": self._secrets["api"],
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secrets["jwt"],
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.root / "logs"),
                # the volume every worker mounts (the incoming example's working folder)
                "ONEDRIVE_EXAMPLE_SHARED_DIR": str(self.root / "shared"),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # scheduled intervals stay off: runs come from the REST API only
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            }
        )
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        env.update(self.extra_env)
        return env

    def worker_env(self, name: str) -> dict[str, str]:
        """A worker's own machine: its home and cache folders are its alone."""
        env = self.base_env()
        machine = self.root / name
        env.update(
            {
                "HOME": str(machine / "home"),
                "XDG_CACHE_HOME": str(machine / "cache"),
                "TMPDIR": str(machine / "tmp"),
                "ONEDRIVE_DEPLOY_WORKER": name,
            }
        )
        return env

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> Deployment:
        try:
            self._prepare_folders()
            self._start_postgres()
            self._start_redis()
            self._migrate()
            self._start_airflow()
            self.wait_healthy()
        except BaseException:
            print(self.describe(), file=sys.stderr)
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            self.services[name].stop()

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self, names: list[str] | None = None) -> str:
        chosen = names or list(self.services)
        return "\n".join(self.services[n].describe() for n in chosen if n in self.services)

    def _prepare_folders(self) -> None:
        assert self.dags is not None
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "shared").mkdir(exist_ok=True)
        (self.root / "airflow").mkdir(exist_ok=True)
        (self.root / "airflow" / "passwords.json").write_text(json.dumps({ADMIN: self.password}))
        for name in WORKERS:
            for sub in ("home", "cache", "tmp"):
                (self.root / name / sub).mkdir(parents=True, exist_ok=True)
        if not self.dags.exists():
            self.dags.mkdir(parents=True)
            for source in [*sorted((REPO / "example_dags").glob("*.py")), *sorted(SUITE_DAGS.glob("*.py"))]:
                shutil.copy(source, self.dags / source.name)

    def _run_as_postgres(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError as exc:
            raise DeploymentError("no 'postgres' user: install Debian's postgresql (`bash .ci/services`)") from exc
        return POSTGRES_USER

    def _start_postgres(self) -> None:
        binaries = postgres_bin()
        data = self.root / "pg"
        user = self._run_as_postgres()
        data.mkdir()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.root, 0, entry.pw_gid)
            self.root.chmod(0o750)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        log = self.root / "postgres.log"
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "airflow", "-A", "trust", "-E", "UTF8", "--no-sync"]
        if user:
            initdb = ["runuser", "-u", user, "--", *initdb]
        result = subprocess.run(initdb, capture_output=True, text=True, cwd="/")
        if result.returncode:
            raise DeploymentError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        argv = [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.pg_port),
            "-k",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ]
        service = Service("postgres", argv, {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}, log, user=user)
        self.services["postgres"] = service
        service.start()
        self._wait("postgres", self._postgres_ready, 60)
        with self._pg("postgres") as conn:
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE airflow")

    @contextlib.contextmanager
    def _pg(self, database: str = "airflow") -> Iterator[Any]:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="airflow", dbname=database)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one read-only query on the metadata DB."""
        with self._pg() as conn:
            cursor = conn.cursor()
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def _postgres_ready(self) -> bool:
        try:
            with self._pg("postgres"):
                return True
        except Exception:
            return False

    def _start_redis(self) -> None:
        folder = self.root / "redis"
        folder.mkdir()
        redis = shutil.which("redis-server")
        if redis is None:
            raise DeploymentError("redis-server is not installed: run `bash .ci/services` (Debian redis-server)")
        argv = [redis, "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(folder)]
        service = Service("redis", argv, {"PATH": os.environ.get("PATH", "")}, self.root / "redis.log")
        self.services["redis"] = service
        service.start()
        self._wait("redis", lambda: self._port_open(self.redis_port), 30)

    def _migrate(self) -> None:
        result = subprocess.run(
            [self.airflow, "db", "migrate"], env=self.base_env(), capture_output=True, text=True, cwd=REPO
        )
        (self.root / "migrate.log").write_text(result.stdout + result.stderr)
        if result.returncode:
            raise DeploymentError(f"airflow db migrate failed:\n{tail(self.root / 'migrate.log')}")

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def _airflow_service(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Service:
        service = Service(name, [self.airflow, *args], env or self.base_env(), self.root / f"{name}.log")
        self.services[name] = service
        service.start()
        return service

    def _start_airflow(self) -> None:
        self._airflow_service("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)])
        self._airflow_service("scheduler", ["scheduler", "--skip-serve-logs"])
        self._airflow_service("dag-processor", ["dag-processor"])
        self._airflow_service("triggerer", ["triggerer", "--skip-serve-logs"])
        for name in WORKERS:
            self.start_worker(name)

    def restart(self, name: str, **settings: str) -> Service:
        """Stop one Airflow process and start it again, with ``settings`` (environment variables) added."""
        old = self.services[name]
        old.stop()
        return self._airflow_service(name, old.argv[1:], {**old.env, **settings})

    def start_worker(self, name: str) -> Service:
        args = ["celery", "worker", "--celery-hostname", f"{name}@loopback", "--skip-serve-logs"]
        args += ["--without-gossip", "--without-mingle"]
        log = self.root / f"{name}.log"
        if log.exists():
            log.rename(log.with_suffix(f".{int(time.time())}.log"))
        return self._airflow_service(name, args, self.worker_env(name))

    def wait_healthy(self, timeout: float = 240) -> None:
        """api-server answers, scheduler, triggerer and dag-processor heartbeat, and both workers are ready."""
        self._wait("api-server", lambda: self._health_ok(), timeout)
        for name in WORKERS:
            self._wait(name, lambda n=name: self.worker_ready(n), timeout)

    def worker_ready(self, name: str) -> bool:
        return f"{name}@loopback ready" in (self.root / f"{name}.log").read_text(errors="replace")

    def _health_ok(self) -> bool:
        try:
            health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

    def _port_open(self, port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def _wait(self, name: str, ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, s in self.services.items() if not s.running]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"not ready after {timeout:.0f} s"
                raise DeploymentError(f"{name}: {why}\n{self.describe()}")
            time.sleep(0.5)

    # -- REST API -----------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            response = requests.post(
                f"{self.api_url}/auth/token", json={"username": ADMIN, "password": self.password}, timeout=30
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API (``/api/v2``) as the admin; raises on an error status."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        response = requests.request(method, f"{self.api_url}/api/v2{path}", headers=headers, timeout=60, **kwargs)
        if response.status_code >= 400:
            raise DeploymentError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Until the dag-processor has parsed and serialized every one of ``dag_ids``."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while missing:
            known = {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 500})["dags"]}
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise DeploymentError(f"DAG import errors: {json.dumps(errors)[:2000]}")
            missing = [d for d in dag_ids if d not in known]
            if missing and time.monotonic() > deadline:
                raise DeploymentError(f"DAGs not parsed: {missing}\n{self.describe(['dag-processor'])}")
            if missing:
                time.sleep(1)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Create a DAG run through the REST API; its run id."""
        body = {"logical_date": None, "conf": conf or {}}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Until the run is finished; its final state (a timeout raises with the scheduler's and workers' logs)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"{dag_id} {run_id} still {state} after {timeout:.0f} s; tasks: {self.task_states(dag_id, run_id)}"
                    f"\n{self.describe(['scheduler', *WORKERS, 'triggerer'])}"
                )
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.api("GET", path, params={"limit": 500})["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {
            f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]: ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """A task try's log as the API server serves it (the UI's log view reads the same endpoint)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        body = self.api("GET", path, params={"full_content": "true", "map_index": map_index})
        content = body.get("content")
        if isinstance(content, list):
            return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in content)
        return str(content)


def main() -> int:
    """Start the deployment with a fresh emulator, load the example DAGs, and wait for Ctrl-C."""
    from airflow_provider_onedrive.commands.demo import seed_demo_drive
    from airflow_provider_onedrive.testing import GraphEmulator

    with GraphEmulator() as emulator:
        seed_demo_drive(emulator)
        connections = {"onedrive_default": emulator.connection("app")}
        deployment = Deployment(connections, dags=REPO / "example_dags")
        print(
            f"starting PostgreSQL, Redis and Airflow (scheduler, dag-processor, triggerer, api-server, "
            f"{len(WORKERS)} Celery workers) in {deployment.root} ...",
            flush=True,
        )
        with deployment:
            print(f"\nAirflow UI:  {deployment.api_url}  (user {ADMIN}, password {deployment.password})")
            print(f"Graph:       {emulator.graph_url}")
            print(f"logs:        {deployment.root}/*.log; Ctrl-C stops everything\n", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    sys.exit(main())
