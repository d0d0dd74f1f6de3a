"""The validator end to end: restore-job event -> moto (RDS, Secrets Manager) -> the probe, invoked through a real
HTTP server speaking the Lambda Invoke API -> real PostgreSQL over verified TLS -> PutRestoreValidationResult on
a real HTTP server speaking the Backup API -> EMF metrics on stdout.

Both halves are our code running for real: the Lambda API stand-in runs the probe's ``probe()`` in-process
with the probe's own environment. The one substitution is the restored instance's address: moto invents a
DNS name under rds.amazonaws.com, so the probe's ``connect`` asserts that it was asked for exactly that host
(and port, database, user, TLS), then dials the TLS front end of the embedded server on 127.0.0.1 instead.
PostgreSQL here cannot check IAM tokens either: in the IAM case the test asserts the token's shape and logs
in with the role's password; the DB_SECRET_ARN case passes the credentials through untouched.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lambdas.restore_validation import handler as handler_module
from lambdas.restore_validation import probe as probe_module
from lambdas.restore_validation.core import NAMESPACE, VALIDATION_ROLE, EventError
from lambdas.shared import db
from tests.conftest import EmbeddedPostgres, PgTlsFrontend

from .backup_api import BackupApi
from .events import REGION, RESTORE_SECONDS, completed, failed
from .lambda_api import LambdaApi

pytestmark = pytest.mark.postgres


# -- helpers -----------------------------------------------------------------------------------------------


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{") and '"_aws"' in line]


def log_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{") and '"_aws"' not in line]


def metric_values(document: dict[str, Any]) -> dict[str, float]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "Shipyard/Backup"
    assert directive["Dimensions"] == [["Stack"]]
    assert document["Stack"] == "prod"
    values = {}
    for metric in directive["Metrics"]:
        raw = document[metric["Name"]]
        values[metric["Name"]] = float(raw[0] if isinstance(raw, list) else raw)
    return values


def the_report(api: BackupApi) -> tuple[str, str]:
    """The one validation result the handler sent to the Backup API: (status, message)."""
    [request] = api.requests
    return request.body["ValidationStatus"], request.body["ValidationStatusMessage"]


PROBE_FUNCTION = "shipyard-prod-backup-probe"


class Clients:
    """The client factory of both halves, pointed at moto (RDS, Secrets Manager), the Backup and Lambda APIs."""

    def __init__(self, moto_endpoint: str, backup_url: str, lambda_url: str) -> None:
        self.endpoints = {"backup": backup_url, "lambda": lambda_url}
        self.moto_endpoint = moto_endpoint
        self.made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self.made:
            self.made[service] = boto3.client(
                service,
                region_name=REGION,
                endpoint_url=self.endpoints.get(service, self.moto_endpoint),
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
            )
        return self.made[service]


class Loopback:
    """``connect`` for the handler: checks what it was asked to reach, then reaches the local TLS front end."""

    def __init__(self, tls_port: int, role_password: str, *, replace_iam_token: bool) -> None:
        self.tls_port = tls_port
        self.role_password = role_password
        self.replace_iam_token = replace_iam_token
        self.calls: list[tuple[db.DatabaseEndpoint, db.Credentials, dict[str, Any]]] = []

    def __call__(self, endpoint: db.DatabaseEndpoint, credentials: db.Credentials, **options: Any) -> Any:
        self.calls.append((endpoint, credentials, options))
        local = db.DatabaseEndpoint("127.0.0.1", self.tls_port, endpoint.database, endpoint.ca_file)
        if self.replace_iam_token:
            credentials = db.Credentials(credentials.username, self.role_password)
        return db.connect(local, credentials, **options)


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def backup_api() -> Iterator[BackupApi]:
    api = BackupApi()
    yield api
    api.close()


@pytest.fixture
def lambda_api() -> Iterator[LambdaApi]:
    api = LambdaApi()
    yield api
    api.close()


@pytest.fixture
def clients(moto_endpoint: str, backup_api: BackupApi, lambda_api: LambdaApi) -> Clients:
    return Clients(moto_endpoint, backup_api.url, lambda_api.url)


@pytest.fixture
def restored_instance(clients: Clients) -> Callable[..., tuple[str, str]]:
    """Creates 'the restored instance' in moto RDS; returns (identifier, endpoint address)."""

    def create(*, iam_auth: bool = True) -> tuple[str, str]:
        identifier = f"awsbackup-restore-test-{uuid.uuid4().hex[:12]}"
        clients("rds").create_db_instance(
            DBInstanceIdentifier=identifier,
            DBInstanceClass="db.t4g.micro",
            Engine="postgres",
            DBName="app",
            MasterUsername="app_admin",
            MasterUserPassword="not-used-by-the-test",
            EnableIAMDatabaseAuthentication=iam_auth,
            PubliclyAccessible=False,
        )
        described = clients("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        return identifier, described["Endpoint"]["Address"]

    return create


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The validator's environment (infra/aws/backup.py sets the same keys)."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    return {
        "STACK": "prod",
        "PROBE_FUNCTION": PROBE_FUNCTION,
        "POWERTOOLS_SERVICE_NAME": "restore-validation",  # must not become a dimension
    }


@pytest.fixture
def loopback(pg_tls_frontend: PgTlsFrontend, validator_password: str) -> Loopback:
    return Loopback(pg_tls_frontend.port, validator_password, replace_iam_token=True)


class DeployedProbe:
    """The probe behind the Lambda API stand-in: its own environment, and how it reaches the database."""

    def __init__(self, env: dict[str, str], clients: Clients, connect: Loopback) -> None:
        self.env = env
        self.clients = clients
        self.connect = connect

    def __call__(self, request: Any) -> Any:
        return probe_module.probe(request, self.env, client=self.clients, connect=self.connect)


@pytest.fixture
def probe(
    seeded_database: str, pg_tls_frontend: PgTlsFrontend, clients: Clients, loopback: Loopback, lambda_api: LambdaApi
) -> DeployedProbe:
    env = {
        "STACK": "prod",
        "DB_NAME": seeded_database,
        "DB_USER": VALIDATION_ROLE,
        "DB_CA_FILE": str(pg_tls_frontend.ca_file),  # verify the server certificate and host name
    }
    deployed = DeployedProbe(env, clients, loopback)
    lambda_api.functions[PROBE_FUNCTION] = deployed
    return deployed


# -- COMPLETED restore jobs --------------------------------------------------------------------------------


def test_a_completed_restore_is_validated_by_the_probe_with_an_iam_token_and_reported(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    loopback: Loopback,
    lambda_api: LambdaApi,
    backup_api: BackupApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    identifier, address = restored_instance()
    event = completed(identifier)

    summary = handler_module.handle(event, lambda_env, client=clients)

    [invocation] = lambda_api.invocations
    assert invocation.function == PROBE_FUNCTION and invocation.invocation_type == "RequestResponse"
    assert invocation.payload == {"identifier": identifier, "address": address, "port": 5432, "iam_auth": True}
    assert "/lambda/aws4_request" in invocation.authorization  # a signed Invoke call
    [(endpoint, credentials, options)] = loopback.calls
    assert (endpoint.host, endpoint.port, endpoint.database) == (address, 5432, probe.env["DB_NAME"])
    assert endpoint.ca_file == probe.env["DB_CA_FILE"] and options["tls"] is True
    assert credentials.username == VALIDATION_ROLE
    assert credentials.password.startswith(f"{address}:5432/?Action=connect&DBUser={VALIDATION_ROLE}&")
    assert "X-Amz-Signature=" in credentials.password and "%2Frds-db%2Faws4_request" in credentials.password

    [request] = backup_api.requests
    assert request.path == f"/restore-jobs/{event['detail']['restoreJobId']}/validations"
    assert request.body["ValidationStatus"] == "SUCCESSFUL"
    assert request.body["ValidationStatusMessage"].startswith("6 checks passed (tables, rows, config,")
    assert "/backup/aws4_request" in request.headers["authorization"]  # a signed Backup API call
    assert summary["validation"]["status"] == "SUCCESSFUL"
    assert summary["restore_seconds"] == pytest.approx(RESTORE_SECONDS)

    stdout = capsys.readouterr().out
    [document] = emf_documents(stdout)
    values = metric_values(document)
    assert values.pop("RestoreTimeSeconds") == pytest.approx(RESTORE_SECONDS)
    assert 0 < values.pop("ValidationDurationSeconds") < 30
    assert values == {"RestoreJobFailed": 0.0, "RestoreValidationSucceeded": 1.0}
    [line] = [line for line in log_lines(stdout) if line.get("event") == "restore_validated"]
    assert line["level"] == "INFO" and line["summary"]["db_instance"] == identifier
    assert credentials.password not in stdout  # the token never reaches the logs


def test_with_db_secret_arn_the_probe_uses_the_secret_unchanged(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    pg_tls_frontend: PgTlsFrontend,
    validator_password: str,
    backup_api: BackupApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    identifier, _ = restored_instance(iam_auth=False)  # the fallback needs no IAM auth on the instance
    secret = clients("secretsmanager").create_secret(
        Name=f"rds-validator-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": VALIDATION_ROLE, "password": validator_password}),
    )
    probe.env["DB_SECRET_ARN"] = secret["ARN"]
    probe.connect = loopback = Loopback(pg_tls_frontend.port, validator_password, replace_iam_token=False)

    handler_module.handle(completed(identifier), lambda_env, client=clients)

    [(_, credentials, _)] = loopback.calls
    assert credentials.username == VALIDATION_ROLE
    [request] = backup_api.requests
    assert request.body["ValidationStatus"] == "SUCCESSFUL"
    assert validator_password not in capsys.readouterr().out


def test_an_empty_restored_database_is_reported_failed_with_the_reason(
    lambda_env: dict[str, str],
    database_url: str,
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    backup_api: BackupApi,
    pg_server: EmbeddedPostgres,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    admin = pg_server.connect()
    try:
        admin.run(f"GRANT CONNECT ON DATABASE {empty} TO {VALIDATION_ROLE}")
    finally:
        admin.close()
    identifier, _ = restored_instance()

    probe.env["DB_NAME"] = empty

    summary = handler_module.handle(completed(identifier), lambda_env, client=clients)

    [request] = backup_api.requests
    assert request.body == {
        "ValidationStatus": "FAILED",
        "ValidationStatusMessage": (
            "missing table(s) in schema public: audit_log, orders, system_config, transactions, users, wallets"
        ),
    }
    assert summary["validation"]["status"] == "FAILED"
    stdout = capsys.readouterr().out
    values = metric_values(emf_documents(stdout)[0])
    assert values["RestoreValidationSucceeded"] == 0.0 and values["RestoreJobFailed"] == 0.0
    [line] = [line for line in log_lines(stdout) if line.get("event") == "restore_validation_failed"]
    assert line["level"] == "ERROR"


def test_an_unreachable_restored_database_is_reported_failed(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    validator_password: str,
    backup_api: BackupApi,
) -> None:
    with socket.socket() as listener:  # a port nobody listens on
        listener.bind(("127.0.0.1", 0))
        closed_port = listener.getsockname()[1]
    identifier, _ = restored_instance()
    probe.connect = Loopback(closed_port, validator_password, replace_iam_token=True)

    handler_module.handle(completed(identifier), lambda_env, client=clients)

    status, message = the_report(backup_api)
    assert status == "FAILED"
    assert message.startswith(f"cannot reach PostgreSQL at 127.0.0.1:{closed_port}/")


def test_iam_auth_off_on_the_restored_instance_is_reported_without_connecting(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    loopback: Loopback,
    lambda_api: LambdaApi,
    backup_api: BackupApi,
) -> None:
    identifier, _ = restored_instance(iam_auth=False)

    handler_module.handle(completed(identifier), lambda_env, client=clients)

    assert [i.payload["iam_auth"] for i in lambda_api.invocations] == [False]
    assert loopback.calls == []
    status, message = the_report(backup_api)
    assert status == "FAILED"
    assert message.startswith(
        f"IAM database authentication is off on restored instance {identifier}: set the restore testing "
        "selection's override enableIamDatabaseAuthentication=true"
    )


def test_a_restored_instance_rds_does_not_know_is_reported_failed_without_a_probe(
    lambda_env: dict[str, str], clients: Clients, probe: DeployedProbe, lambda_api: LambdaApi, backup_api: BackupApi
) -> None:
    handler_module.handle(completed("awsbackup-restore-test-gone"), lambda_env, client=clients)

    assert lambda_api.invocations == []
    status, message = the_report(backup_api)
    assert status == "FAILED"
    assert message.startswith("cannot describe restored instance awsbackup-restore-test-gone: DBInstanceNotFound")


def test_a_misconfigured_probe_reports_which_setting(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    backup_api: BackupApi,
) -> None:
    identifier, _ = restored_instance()
    del probe.env["DB_NAME"]
    probe.env["MIN_ROWS_JSON"] = "{"

    handler_module.handle(completed(identifier), lambda_env, client=clients)

    status, message = the_report(backup_api)
    assert status == "FAILED"
    assert message == "validator probe misconfigured: missing environment variable(s): DB_NAME"


def test_a_validator_without_its_probe_setting_reports_which_setting(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    lambda_api: LambdaApi,
    backup_api: BackupApi,
) -> None:
    identifier, _ = restored_instance()
    del lambda_env["PROBE_FUNCTION"]

    handler_module.handle(completed(identifier), lambda_env, client=clients)

    assert the_report(backup_api) == (
        "FAILED",
        "validator misconfigured: missing environment variable(s): PROBE_FUNCTION",
    )
    assert lambda_api.invocations == []


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (
            lambda api: setattr(api, "function_error", ("Sandbox.Timedout", "Task timed out after 90.00 seconds")),
            f"validator probe {PROBE_FUNCTION} failed: Sandbox.Timedout: Task timed out after 90.00 seconds",
        ),
        (
            lambda api: api.functions.clear(),
            f"cannot invoke validator probe {PROBE_FUNCTION}: ResourceNotFoundException: ",
        ),
        (
            lambda api: api.functions.update({PROBE_FUNCTION: lambda request: {"status": "SUCCESSFUL"}}),
            f"validator probe {PROBE_FUNCTION} answered with no usable result: field failures must be a list",
        ),
        (
            lambda api: api.functions.update({PROBE_FUNCTION: lambda request: 1 / 0}),
            f"validator probe {PROBE_FUNCTION} failed: ZeroDivisionError: division by zero",
        ),
    ],
    ids=["probe-timed-out", "probe-missing", "not-a-result", "probe-raised"],
)
def test_a_probe_that_gives_no_verdict_is_a_failed_validation(
    setup: Callable[[LambdaApi], Any],
    reason: str,
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    lambda_api: LambdaApi,
    backup_api: BackupApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    identifier, _ = restored_instance()
    setup(lambda_api)

    summary = handler_module.handle(completed(identifier), lambda_env, client=clients)

    status, message = the_report(backup_api)
    assert status == "FAILED" and message.startswith(reason)
    assert summary["validation"]["failures"][0]["check"] == "probe"
    assert len(lambda_api.invocations) == 1  # no second probe: the verdict is reported once
    assert metric_values(emf_documents(capsys.readouterr().out)[0])["RestoreValidationSucceeded"] == 0.0


def test_when_the_result_cannot_be_reported_the_invocation_fails_for_a_retry(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    backup_api: BackupApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backup_api.fail_with = (400, "ResourceNotFoundException", "Restore job not found")
    identifier, _ = restored_instance()
    event = completed(identifier)

    with pytest.raises(handler_module.ReportError, match=r"PutRestoreValidationResult for restore job AB123456-.*"):
        handler_module.handle(event, lambda_env, client=clients)

    assert len(backup_api.requests) == 1  # one attempt: Lambda's async retries and the DLQ take it from here
    stdout = capsys.readouterr().out
    assert metric_values(emf_documents(stdout)[0])["RestoreValidationSucceeded"] == 1.0  # it was validated
    [line] = [line for line in log_lines(stdout) if line.get("event") == "validation_report_failed"]
    assert "ResourceNotFoundException" in line["message"]


# -- FAILED jobs and bad events ----------------------------------------------------------------------------


def test_a_failed_restore_job_publishes_the_metric_and_validates_nothing(
    lambda_env: dict[str, str], clients: Clients, backup_api: BackupApi, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = handler_module.handle(failed(), lambda_env, client=clients)

    assert summary == {"restore_job_id": "1B234A56-789B-01CD-2A34-4567A08901FD", "restore_status": "FAILED",
                       "validated": False}  # fmt: skip
    assert clients.made == {} and backup_api.requests == []  # no AWS call at all
    stdout = capsys.readouterr().out
    [document] = emf_documents(stdout)
    assert metric_values(document) == {"RestoreJobFailed": 1.0}
    [line] = [line for line in log_lines(stdout) if line.get("event") == "restore_job_failed"]
    assert "subnet group" in line["message"] and line["level"] == "ERROR"


def test_a_malformed_event_is_a_clear_error_and_nothing_is_published(
    lambda_env: dict[str, str], clients: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    event = completed()
    del event["detail"]["restoreJobId"]

    with pytest.raises(EventError, match=r"event field detail\.restoreJobId is missing"):
        handler_module.handle(event, lambda_env, client=clients)

    stdout = capsys.readouterr().out
    assert emf_documents(stdout) == [] and clients.made == {}
    [line] = log_lines(stdout)
    assert line["event"] == "invalid_event" and "detail.restoreJobId" in line["message"]


# -- the Lambda entry point --------------------------------------------------------------------------------


def test_the_entry_point_builds_its_clients_lazily_from_the_environment(
    lambda_env: dict[str, str],
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    moto_endpoint: str,
    lambda_api: LambdaApi,
    backup_api: BackupApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handler_module, "_clients", {})
    for name, value in {
        **lambda_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_RDS": moto_endpoint,
        "AWS_ENDPOINT_URL_BACKUP": backup_api.url,
        "AWS_ENDPOINT_URL_LAMBDA": lambda_api.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    handler_module.handler(failed(), None)
    assert handler_module._clients == {}  # a failed restore job needs no client

    identifier, _ = restored_instance(iam_auth=False)  # the probe reports FAILED before any connection is tried
    handler_module.handler(completed(identifier), None)

    assert sorted(handler_module._clients) == ["backup", "lambda", "rds"]
    assert handler_module._clients["lambda"].meta.config.read_timeout == handler_module.PROBE_READ_TIMEOUT_S
    status, message = the_report(backup_api)
    assert status == "FAILED" and identifier in message


# -- manual checks (the restore runbook) -------------------------------------------------------------------


def test_a_manual_check_returns_the_result_and_reports_nothing(
    lambda_env: dict[str, str],
    clients: Clients,
    restored_instance: Callable[..., tuple[str, str]],
    probe: DeployedProbe,
    loopback: Loopback,
    backup_api: BackupApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    identifier, address = restored_instance()

    summary = handler_module.handle({"validate_db_instance": identifier}, lambda_env, client=clients)

    assert summary["db_instance"] == identifier
    assert summary["validation"]["status"] == "SUCCESSFUL" and summary["message"].startswith("6 checks passed")
    [(endpoint, _, _)] = loopback.calls
    assert endpoint.host == address
    assert backup_api.requests == [] and "backup" not in clients.made
    stdout = capsys.readouterr().out
    assert emf_documents(stdout) == []  # a manual restore is not a restore test
    [line] = log_lines(stdout)
    assert line["event"] == "manual_validation"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"validate_db_instance": "no such; id"}, r"event field validate_db_instance must be a DB instance identifier"),
        (
            {"validate_db_instance": "db-1", "db": "x"},
            r"unknown event field\(s\) \['db'\] next to validate_db_instance",
        ),
    ],
)
def test_a_bad_manual_request_names_the_field(lambda_env: dict[str, str], event: dict[str, Any], error: str) -> None:
    with pytest.raises(EventError, match=error):
        handler_module.handle(event, lambda_env, client=lambda service: pytest.fail(f"no {service} client expected"))
