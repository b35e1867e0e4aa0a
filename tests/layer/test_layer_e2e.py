"""The built layer is complete: the example handler runs from it in a fresh interpreter, as on Lambda.

The interpreter (python3.12 / python3.13 with ``-S``: no site-packages at all) sees only what a Lambda function
sees, laid out in a temporary directory:

* ``task/``: the function's code (``examples/handler.py``), like ``/var/task``;
* ``opt/python/``: our layer zip, unzipped, like ``/opt/python``;
* ``powertools/python/``: Powertools and its one dependency, as AWS's public Powertools layer provides it
  (template.yaml attaches that layer rather than vendoring Powertools);
* ``runtime/``: boto3, botocore and their dependencies, which the Lambda runtime ships.

The secret comes from moto's server mode on loopback, the database is the private MariaDB of the test session,
and the configuration is the environment template.yaml sets. Nothing from the repository or ``.venv`` is
importable, so a module missing from the layer fails the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from harness.mariadb import AppUser, MariaDBServer
from tests.layer.conftest import LayerBuild, find_python, link_module

ROOT = Path(__file__).resolve().parents[2]
# What the Lambda runtime provides (boto3 and its dependency closure) and what AWS's Powertools layer adds.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
POWERTOOLS_MODULES = ("aws_lambda_powertools", "typing_extensions")
MAX_STATEMENTS_PER_INVOCATION = 1.2  # issue 5's benchmark target for the example handler


@dataclass(frozen=True)
class LambdaSandbox:
    """Directories standing in for /var/task, /opt/python, the Powertools layer and the runtime's packages."""

    task: Path
    opt_python: Path
    powertools: Path
    runtime: Path

    @property
    def pythonpath(self) -> str:
        return os.pathsep.join(str(p) for p in (self.opt_python, self.powertools, self.runtime))


@pytest.fixture(scope="module")
def sandbox(layer_build: LayerBuild, tmp_path_factory: pytest.TempPathFactory) -> LambdaSandbox:
    base = tmp_path_factory.mktemp("lambda")
    task, opt, powertools, runtime = (base / n for n in ("task", "opt", "powertools/python", "runtime"))
    for directory in (task, opt, powertools, runtime):
        directory.mkdir(parents=True)
    with zipfile.ZipFile(layer_build.layer_zip) as zf:
        zf.extractall(opt)
    shutil.copy(ROOT / "examples" / "handler.py", task / "handler.py")
    shutil.copy(Path(__file__).with_name("lambda_runner.py"), task / "lambda_runner.py")
    for name in POWERTOOLS_MODULES:
        link_module(name, powertools)
    for name in RUNTIME_MODULES:
        link_module(name, runtime)
    return LambdaSandbox(task=task, opt_python=opt / "python", powertools=powertools, runtime=runtime)


@dataclass(frozen=True)
class Deployment:
    """A database user with the example schema, and its secret in (moto's) Secrets Manager."""

    user: AppUser
    secret_arn: str
    moto_endpoint: str


def _load_schema(user: AppUser) -> None:
    # Users share the session's database: start from an empty table, so that the ids are 1, 2, 3.
    with user.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS orders")
        cur.execute((ROOT / "examples" / "schema.sql").read_text(encoding="utf-8"))


def _deploy(app_user: AppUser, moto_endpoint: str) -> Deployment:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # The standard RDS secret format; the password exists only here and in the database.
    secret = {
        "engine": "mariadb",
        "username": app_user.name,
        "password": app_user.password,
        "host": app_user.host,
        "port": app_user.port,
        "dbname": app_user.database,
    }
    created = client.create_secret(Name=f"e2e/{app_user.name}", SecretString=json.dumps(secret))
    return Deployment(user=app_user, secret_arn=created["ARN"], moto_endpoint=moto_endpoint)


@pytest.fixture
def deployment(app_user: AppUser, moto_endpoint: str) -> Deployment:
    _load_schema(app_user)
    return _deploy(app_user, moto_endpoint)


@pytest.fixture
def minimal_deployment(app_user: AppUser, mariadb: MariaDBServer, moto_endpoint: str) -> Iterator[Deployment]:
    """A user with exactly the grants docs/deploying.md asks for: SELECT and INSERT on the orders table, no more."""
    _load_schema(app_user)
    name, password = f"min_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    mariadb.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", [name, password])
    try:
        mariadb.execute(f"GRANT SELECT, INSERT ON `{app_user.database}`.orders TO %s@'%%'", [name])
        user = AppUser(name=name, password=password, host=app_user.host, port=app_user.port, database=app_user.database)
        yield _deploy(user, moto_endpoint)
    finally:
        mariadb.execute("DROP USER IF EXISTS %s@'%%'", [name])


def _lambda_env(sandbox: LambdaSandbox, deployment: Deployment, python: str, home: Path) -> dict[str, str]:
    """The environment of the deployed ExampleFunction (template.yaml) plus what Lambda itself sets."""
    major_minor = ".".join(Path(python).name.removeprefix("python").split(".")[:2])
    return {
        "PATH": f"{Path(python).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": sandbox.pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",  # /opt is read-only on Lambda
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{major_minor}",
        "AWS_LAMBDA_FUNCTION_NAME": "ExampleFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # botocore names service endpoints after the service id, "Secrets Manager" -> SECRETS_MANAGER.
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": deployment.moto_endpoint,
        # template.yaml's Environment.Variables (DatabaseHost/DatabaseName empty: the secret's host and dbname).
        "SERVERLESS_MYSQL_SECRET_ID": deployment.secret_arn,
        "SERVERLESS_MYSQL_CONN_UTILIZATION": "0.8",
        "POWERTOOLS_SERVICE_NAME": "orders",
    }


def _start(
    sandbox: LambdaSandbox, deployment: Deployment, python: str, events: list[Any], tmp_path: Path, **job: Any
) -> subprocess.Popen[str]:
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps({"events": events, "timeout_ms": 10_000, **job}), encoding="utf-8")
    return subprocess.Popen(
        [python, "-S", "-B", "lambda_runner.py", str(job_path)],
        cwd=sandbox.task,
        env=_lambda_env(sandbox, deployment, python, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no report on stdout: {stdout[-2000:]!r}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def _python(version: str) -> str:
    exe = find_python(version)
    if exe is None:
        pytest.skip(f"no python{version} interpreter here (Lambda runtime python{version})")
    return exe


def _under(path: str | None, directory: Path) -> bool:
    return path is not None and Path(path).is_relative_to(directory)


def _check_isolation(report: dict[str, Any], sandbox: LambdaSandbox) -> None:
    origins = report["origins"]
    assert _under(origins["serverless_mysql"], sandbox.opt_python), origins
    assert _under(origins["pymysql"], sandbox.opt_python), origins
    assert _under(origins["aws_lambda_powertools"], sandbox.powertools), origins
    assert _under(origins["boto3"], sandbox.runtime), origins
    assert _under(origins["botocore"], sandbox.runtime), origins
    assert origins["cryptography"] is None, "cryptography must not be importable (and PyMySQL must not need it)"
    for entry in report["sys_path"]:
        assert "site-packages" not in entry and ".venv" not in entry, f"not isolated: {entry} on sys.path"


EVENTS_SETUP: list[dict[str, Any]] = [
    {"action": "create", "customer": "ada", "item": "notebook", "quantity": 2},
    {"action": "create", "customer": "bob", "item": "pencil"},
    {"action": "create", "customer": "ada", "item": "eraser", "quantity": 5},
]


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_example_handler_runs_from_the_layer(
    version: str, sandbox: LambdaSandbox, deployment: Deployment, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    python = _python(version)
    # Enough invocations that the adaptive housekeeping (about 1 run in 10 at low utilization) averages out.
    reads = [{"action": "get", "id": n % 3 + 1} for n in range(200)]
    events: list[Any] = [
        *EVENTS_SETUP,
        {"action": "get", "id": 1},
        {"action": "list", "customer": "ada", "limit": 10},
        {"action": "get", "id": 999_999},
        {"action": "get", "id": "1; DROP TABLE orders"},
        {"action": "refund", "id": 1},
        *reads,
    ]
    proc = _start(sandbox, deployment, python, events, tmp_path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{stderr[-4000:]}"
    report = _report(stdout)
    assert report["python"][:2] == [int(v) for v in version.split(".")]
    _check_isolation(report, sandbox)

    results = report["results"]
    created = results[:3]
    assert [r["status"] for r in created] == [201, 201, 201]
    ids = [r["id"] for r in created]
    assert ids == [1, 2, 3]
    got = results[3]
    assert got["status"] == 200
    assert {k: got["order"][k] for k in ("id", "customer", "item", "quantity")} == {
        "id": ids[0],
        "customer": "ada",
        "item": "notebook",
        "quantity": 2,
    }
    assert isinstance(got["order"]["created_at"], str)
    listed = results[4]
    assert [o["id"] for o in listed["orders"]] == [ids[2], ids[0]]
    assert results[5] == {"status": 404, "error": "order 999999 not found"}
    assert results[6]["status"] == 400 and results[7]["status"] == 400
    assert all(r["status"] == 200 for r in results[8:])

    # The rows are really in the database, written by the secret's user.
    rows = mariadb.execute(f"SELECT customer, item, quantity FROM `{deployment.user.database}`.orders ORDER BY id")
    assert [(r["customer"], r["item"], r["quantity"]) for r in rows] == [
        ("ada", "notebook", 2),
        ("bob", "pencil", 1),
        ("ada", "eraser", 5),
    ]

    # One connection for the whole environment, about one statement per invocation.
    stats = report["stats"]
    assert stats is not None, "@with_mysql exposes the handler's client as handler.db"
    assert stats["connects"] == 1, stats
    database_invocations = sum(1 for r in results if r["status"] != 400)
    statements = stats["queries"] + stats["housekeeping_statements"]
    per_invocation = statements / database_invocations
    print(
        f"\npython{version}: {len(events)} invocations ({database_invocations} with a statement), "
        f"{statements} statements ({per_invocation:.3f}/invocation), 1 connect; handler import "
        f"{report['import_ms']:.0f} ms, first invocation {report['durations_ms'][0]:.0f} ms (secret + connect), "
        f"median later {sorted(report['durations_ms'][8:])[len(report['durations_ms'][8:]) // 2]:.1f} ms"
    )
    assert stats["queries"] == database_invocations
    assert stats["housekeeping_errors"] == 0, stats
    assert per_invocation <= MAX_STATEMENTS_PER_INVOCATION
    # The connection is still open for the next invocation... and the process exit closed it.
    assert mariadb.wait_for_connection_count(0, user=deployment.user.name) == 0


@pytest.mark.slow
@pytest.mark.private_server  # Aborted_clients is server-wide: other clients of a shared server would move it
def test_sigterm_closes_the_connection_cleanly(
    sandbox: LambdaSandbox, deployment: Deployment, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """With the shutdown extension registered, Lambda sends SIGTERM before destroying the environment: the
    decorator (from the layer) closes its connection with COM_QUIT, so the server counts no aborted client."""
    python = _python("3.12")
    proc = _start(
        sandbox, deployment, python, [*EVENTS_SETUP, {"action": "get", "id": 1}], tmp_path, wait_for_sigterm=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        report = _report(line)
        assert [r["status"] for r in report["results"]] == [201, 201, 201, 200]
        assert mariadb.connection_count(deployment.user.name) == 1, "the environment keeps its connection"
        aborted_before = int(mariadb.status("Aborted_clients") or 0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGTERM, f"exit {proc.returncode}: {stderr[-2000:]}"
    assert mariadb.wait_for_connection_count(0, user=deployment.user.name) == 0
    aborted_after = int(mariadb.status("Aborted_clients") or 0)
    assert aborted_after == aborted_before, "the connection was dropped, not closed with COM_QUIT"


@pytest.mark.slow
def test_minimal_grants_suffice(
    sandbox: LambdaSandbox, minimal_deployment: Deployment, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """SELECT and INSERT on the table are enough, housekeeping included (no PROCESS, no global privilege)."""
    python = _python("3.12")
    events = [*EVENTS_SETUP, *({"action": "get", "id": n} for n in (1, 2, 3)), {"action": "list", "customer": "ada"}]
    proc = _start(sandbox, minimal_deployment, python, events, tmp_path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{stderr[-4000:]}"
    report = _report(stdout)
    assert [r["status"] for r in report["results"]] == [201, 201, 201, 200, 200, 200, 200]
    stats = report["stats"]
    assert stats["housekeeping_runs"] >= 1, "housekeeping runs at least once after a connect"
    assert stats["housekeeping_errors"] == 0, stats
    grants = mariadb.execute("SHOW GRANTS FOR %s@'%%'", [minimal_deployment.user.name])
    assert not any("PROCESS" in str(row) or "ALL PRIVILEGES" in str(row) for row in grants), grants


def test_sandbox_hides_the_repository(sandbox: LambdaSandbox, tmp_path: Path) -> None:
    """Control: without the layer on the path, the handler cannot even be imported."""
    python = find_python("3.12") or find_python("3.13")
    if python is None:
        pytest.skip("no python3.12 or python3.13 interpreter here")
    run: Callable[[str], subprocess.CompletedProcess[str]] = lambda path: subprocess.run(  # noqa: E731
        [python, "-S", "-B", "-c", "import handler"],
        cwd=sandbox.task,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": path, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    without_layer = run(os.pathsep.join(str(p) for p in (sandbox.powertools, sandbox.runtime)))
    assert without_layer.returncode != 0
    assert "No module named 'serverless_mysql'" in without_layer.stderr
    with_layer = run(sandbox.pythonpath)
    assert with_layer.returncode == 0, with_layer.stderr
