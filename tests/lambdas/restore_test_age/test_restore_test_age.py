"""restore_test_age against a local HTTP server speaking the AWS Backup REST API (real boto3, real HTTP)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from botocore.config import Config

from lambdas.restore_test_age import core, handler

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
PLAN = "shipyard_prod_restore_test"
PLAN_ARN = f"arn:aws:backup:us-east-1:123456789012:restore-testing-plan:{PLAN}-a1b2c3"
CREATED = NOW - dt.timedelta(days=200)


def _job(job_id: str, completed: dt.datetime, validation: str | None) -> dict[str, Any]:
    job: dict[str, Any] = {
        "RestoreJobId": job_id,
        "Status": "COMPLETED",
        "CreationDate": (completed - dt.timedelta(minutes=40)).timestamp(),
        "CompletionDate": completed.timestamp(),
        "ResourceType": "RDS",
    }
    if validation is not None:
        job["ValidationStatus"] = validation
    return job


@dataclass
class FakeBackup:
    """The two AWS Backup operations the check calls, over HTTP, paging `page_size` jobs at a time."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 100
    plan_exists: bool = True
    endless: bool = False
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)


def _server(fake: FakeBackup) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any], error: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            fake.requests.append((url.path, query))
            if url.path.startswith("/restore-testing/plans/"):
                name = unquote(url.path.rsplit("/", 1)[-1])
                if not fake.plan_exists or name != PLAN:
                    self._send(404, {"Message": f"plan {name} not found"}, "ResourceNotFoundException")
                    return
                plan = {"RestoreTestingPlanArn": PLAN_ARN, "RestoreTestingPlanName": PLAN}
                self._send(200, {"RestoreTestingPlan": {**plan, "CreationTime": CREATED.timestamp()}})
                return
            if url.path == "/restore-jobs/":
                start = int(query.get("nextToken", ["0"])[0])
                page = fake.jobs[start : start + fake.page_size]
                body: dict[str, Any] = {"RestoreJobs": page}
                if fake.endless or start + fake.page_size < len(fake.jobs):
                    body["NextToken"] = str(start + fake.page_size)
                self._send(200, body)
                return
            self._send(404, {"Message": "unknown path"}, "UnknownOperationException")

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def fake() -> FakeBackup:
    return FakeBackup()


@pytest.fixture
def backup(fake: FakeBackup) -> Iterator[Any]:
    server = _server(fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield boto3.client(
            "backup",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Shipyard/Backup")
    return {"STACK": "prod", "RESTORE_TESTING_PLAN_NAME": PLAN}


def _emf(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_age_counts_from_the_newest_validated_restore(
    fake: FakeBackup, backup: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.jobs = [
        _job("old-ok", NOW - dt.timedelta(days=40), "SUCCESSFUL"),
        _job("newer-failed-validation", NOW - dt.timedelta(days=5), "FAILED"),
        _job("never-validated", NOW - dt.timedelta(days=3), None),
        _job("ok", NOW - dt.timedelta(days=12, hours=12), "SUCCESSFUL"),
    ]
    fake.page_size = 1  # four pages: every one must be read
    summary = handler.handle(env, backup, lambda: NOW)
    assert summary["days_since_last_restore_test"] == 12.5
    assert summary["completed_jobs_seen"] == 4
    assert summary["plan"] == PLAN_ARN
    (emf,) = _emf(capsys)
    assert emf["DaysSinceLastRestoreTest"] == [12.5] and emf["Stack"] == "prod"
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Shipyard/Backup" and directive["Dimensions"] == [["Stack"]]
    # The query asks AWS Backup for this plan's completed jobs of the lookback window only.
    listing = [query for path, query in fake.requests if path == "/restore-jobs/"]
    assert len(listing) == 4
    assert listing[0]["restoreTestingPlanArn"] == [PLAN_ARN] and listing[0]["status"] == ["COMPLETED"]
    since = dt.datetime.fromisoformat(listing[0]["completeAfter"][0].replace("Z", "+00:00"))
    assert since == NOW - dt.timedelta(days=core.LOOKBACK_DAYS)


def test_a_plan_that_never_passed_ages_from_its_creation_capped_at_the_lookback(
    fake: FakeBackup, backup: Any, env: dict[str, str]
) -> None:
    fake.jobs = [_job("failed-validation", NOW - dt.timedelta(days=2), "FAILED")]
    summary = handler.handle(env, backup, lambda: NOW)
    assert summary["last_validated_restore"] is None
    assert summary["days_since_last_restore_test"] == core.LOOKBACK_DAYS  # created 200 days ago, capped
    young = handler.handle(env, backup, lambda: CREATED + dt.timedelta(days=3))
    assert young["days_since_last_restore_test"] == 3.0  # a new plan is not overdue before its first month


def test_unreadable_plan_fails_the_invocation_and_publishes_nothing(
    fake: FakeBackup, backup: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.plan_exists = False
    with pytest.raises(core.PlanError, match=f"restore testing plan '{PLAN}' could not be read"):
        handler.handle(env, backup, lambda: NOW)
    output = capsys.readouterr().out
    assert '"event":"restore_test_age_failed"' in output
    assert "_aws" not in output  # missing data, which the alarm treats as breaching


def test_paging_is_bounded(fake: FakeBackup, backup: Any, env: dict[str, str]) -> None:
    fake.jobs = [_job(f"j{i}", NOW - dt.timedelta(days=1), "SUCCESSFUL") for i in range(3)]
    fake.page_size, fake.endless = 1, True
    with pytest.raises(core.PlanError, match="more than 20 pages"):
        handler.handle(env, backup, lambda: NOW)
    assert len([p for p, _ in fake.requests if p == "/restore-jobs/"]) == core.MAX_PAGES


def test_settings_are_required(backup: Any) -> None:
    with pytest.raises(ValueError, match="RESTORE_TESTING_PLAN_NAME"):
        handler.handle({"STACK": "prod"}, backup, lambda: NOW)
    with pytest.raises(ValueError, match="STACK"):
        handler.handle({"RESTORE_TESTING_PLAN_NAME": PLAN}, backup, lambda: NOW)
