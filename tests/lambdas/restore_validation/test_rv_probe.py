"""The probe's contract with the validator: the request it accepts, the result it returns, and its entry point."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from lambdas.restore_validation import core
from lambdas.restore_validation import probe as probe_module
from lambdas.restore_validation.core import VALIDATION_ROLE, EventError

REQUEST = {"identifier": "awsbackup-restore-test-1", "address": "db.example.internal", "port": 5432, "iam_auth": True}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"identifier": "no such; id"}, r"probe request field identifier must be a DB instance identifier"),
        ({"address": "host:5432"}, r"probe request field address must be a host name, got 'host:5432'"),
        ({"port": "5432"}, r"probe request field port must be a TCP port, got '5432'"),
        ({"port": True}, r"probe request field port must be a TCP port, got True"),
        ({"iam_auth": "yes"}, r"probe request field iam_auth must be true or false, got 'yes'"),
        ({"password": "x"}, r"unknown probe request field\(s\) \['password'\]"),
    ],
)
def test_a_request_that_is_not_one_names_the_field(change: dict[str, Any], error: str) -> None:
    with pytest.raises(EventError, match=error):
        probe_module.Target.from_request({**REQUEST, **change})


def test_a_request_round_trips() -> None:
    assert probe_module.Target.from_request(REQUEST).request() == REQUEST
    with pytest.raises(EventError, match=r"must be a JSON object, got list"):
        probe_module.Target.from_request([REQUEST])


def test_a_result_survives_the_trip_back_to_the_validator() -> None:
    result = core.ValidationResult(checks_passed=["tables", "rows"], row_counts={"users": 1}, duration_s=0.25)
    result.fail("config", "system_config lacks platform_fee_percentage")

    back = core.ValidationResult.from_summary(result.summary())

    assert (back.status, back.message(), back.row_counts, back.duration_s) == (
        "FAILED",
        "system_config lacks platform_fee_percentage",
        {"users": 1},
        0.25,
    )


@pytest.mark.parametrize(
    ("summary", "error"),
    [
        (None, r"expected a JSON object, got NoneType"),
        ({"status": "SUCCESSFUL", "failures": [], "checks_passed": [], "row_counts": {}}, r"contradicts the checks"),
        ({"status": "SUCCESSFUL", "failures": [{"check": "x"}], "checks_passed": ["a"], "row_counts": {}}, "failures"),
        ({"status": "SUCCESSFUL", "failures": [], "checks_passed": ["a"], "row_counts": {"users": "1"}}, "row_counts"),
    ],
)
def test_a_summary_that_does_not_add_up_is_refused(summary: Any, error: str) -> None:
    # A pass must be earned by checks that ran: "SUCCESSFUL" with nothing behind it is not a verdict.
    with pytest.raises(ValueError, match=error):
        core.ValidationResult.from_summary(summary)


def test_the_entry_point_signs_its_token_locally_and_reports_an_unreachable_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the isolated subnets there is no AWS endpoint to reach: the probe must need none."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        closed_port = listener.getsockname()[1]
    monkeypatch.setattr(probe_module, "_clients", {})
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # any API call would fail loudly here
        "DB_NAME": "app",
        "DB_USER": VALIDATION_ROLE,
    }.items():
        monkeypatch.setenv(name, value)

    summary = probe_module.handler({**REQUEST, "address": "127.0.0.1", "port": closed_port}, None)

    assert summary["status"] == "FAILED"
    [failure] = summary["failures"]
    assert failure["check"] == "connect" and failure["reason"].startswith(
        f"cannot reach PostgreSQL at 127.0.0.1:{closed_port}/"
    )
    assert sorted(probe_module._clients) == ["rds"]  # built to sign the token; no request was sent
