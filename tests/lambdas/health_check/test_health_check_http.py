"""HTTP(S) checks against real servers on 127.0.0.1, one test per failure mode, plus the all-good case."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from lambdas.health_check.checks import CERT_EXPIRING, CheckDeps, CheckResult, run_check
from lambdas.health_check.config import parse_targets
from lambdas.health_check.runner import RunReport, run_checks
from tests.tls import Pki

from .conftest import MakeServer
from .support import closed_port, dripping_server, hanging_port

HEALTH_JSON = json.dumps({"status": "ok", "checks": {"database": "up", "queue": [{"lag": 0}]}, "ready": True})


def run(targets: list[dict[str, Any]], *, deadline_s: float = 10.0, deps: CheckDeps | None = None) -> RunReport:
    parsed = parse_targets(targets)
    chosen = deps or CheckDeps()
    return run_checks(parsed, lambda target, ctx: run_check(target, ctx, chosen), deadline_s=deadline_s)


def check(target: dict[str, Any], **kwargs: Any) -> CheckResult:
    return run([{"name": "probe", "kind": "http", **target}], **kwargs).results[0]


def test_all_good_http_checks_status_body_json_field_and_budget(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/api/health", body=HEALTH_JSON, content_type="application/json")

    result = check(
        {
            "url": server.url("/api/health"),
            "body_contains": '"status": "ok"',
            "json_field": {"path": "checks.database", "equals": "up"},
            "latency_budget_ms": 2000,
            "timeout_s": 5,
        }
    )

    assert result.up, result.detail
    assert (result.reason, result.status, result.warnings) == (None, 200, [])
    assert result.latency_ms is not None
    assert result.latency_ms > 0
    assert set(result.phases_ms) == {"dns", "connect", "request", "response", "body"}
    assert result.cert_days_left is None  # plain HTTP has no certificate


def test_all_good_https_reports_certificate_days_left(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("good", valid_until_days=90))
    server.route("/", body="<html>shop</html>")

    result = check({"url": server.url("/"), "body_contains": "shop", "ca_file": str(pki.ca_file)})

    assert result.up, result.detail
    assert result.cert_days_left is not None
    assert 89 < result.cert_days_left <= 90
    assert result.cert_not_after is not None
    assert result.warnings == []
    assert "tls" in result.phases_ms


def test_slow_server_is_a_timeout_bounded_by_the_targets_timeout(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/slow", delay_s=5)

    started = time.monotonic()
    result = check({"url": server.url("/slow"), "timeout_s": 0.3})

    assert (result.up, result.reason, result.phase) == (False, "timeout", "response")
    assert result.latency_ms is None
    assert time.monotonic() - started < 3  # a check never waits for the slow server to finish


def test_closed_port_is_refused() -> None:
    with closed_port() as port:
        result = check({"url": f"http://127.0.0.1:{port}/"})

    assert (result.up, result.reason, result.phase) == (False, "refused", "connect")


def test_wrong_status_is_status(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/api/health/ready", status=503, body="starting")

    result = check({"url": server.url("/api/health/ready")})

    assert (result.up, result.reason, result.status) == (False, "status", 503)
    assert result.detail == "status 503, expected 200"


def test_expected_status_other_than_200_passes(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/teapot", status=418)

    assert check({"url": server.url("/teapot"), "expected_status": 418}).up


def test_missing_text_in_body_is_body(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/", body="<html>maintenance</html>")

    result = check({"url": server.url("/"), "body_contains": "shop"})

    assert (result.up, result.reason, result.status) == (False, "body", 200)
    assert result.detail == "body does not contain 'shop'"


@pytest.mark.parametrize(
    ("body", "json_field", "detail"),
    [
        (
            HEALTH_JSON,
            {"path": "checks.database", "equals": "down"},
            'JSON field checks.database is "up", expected "down"',
        ),
        (HEALTH_JSON, {"path": "checks.cache", "equals": "up"}, "JSON field checks.cache is missing"),
        (HEALTH_JSON, {"path": "checks.queue.0.lag", "equals": 0}, None),
        (HEALTH_JSON, {"path": "checks.queue.1.lag", "equals": 0}, "JSON field checks.queue.1 is missing"),
        # JSON true is not 1: a health flag must match its type too.
        (HEALTH_JSON, {"path": "ready", "equals": 1}, "JSON field ready is true, expected 1"),
        ("<html>not json</html>", {"path": "status", "equals": "ok"}, "body is not JSON"),
    ],
)
def test_json_field_assertion(
    make_server: MakeServer, body: str, json_field: dict[str, Any], detail: str | None
) -> None:
    server = make_server()
    server.route("/api/health", body=body, content_type="application/json")

    result = check({"url": server.url("/api/health"), "json_field": json_field})

    if detail is None:
        assert result.up, result.detail
    else:
        assert (result.up, result.reason, result.detail) == (False, "body", detail)


def test_answer_slower_than_budget_is_latency(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/", delay_s=0.25)

    result = check({"url": server.url("/"), "latency_budget_ms": 100, "timeout_s": 5})

    assert (result.up, result.reason, result.status) == (False, "latency", 200)
    assert result.latency_ms is not None
    assert result.latency_ms >= 250
    assert result.detail is not None
    assert result.detail.endswith("budget 100 ms")


def test_first_failed_assertion_is_the_reason_and_all_are_in_the_detail(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/", status=500, body="oops", delay_s=0.15)

    result = check({"url": server.url("/"), "body_contains": "ok", "latency_budget_ms": 50})

    assert result.reason == "status"
    assert result.detail is not None
    assert result.detail.startswith("status 500, expected 200; body does not contain 'ok'; took ")


def test_self_signed_certificate_is_tls(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("self-signed", self_signed=True))
    server.route("/")

    # Even with our CA trusted, a certificate signed by itself is not.
    result = check({"url": server.url("/"), "ca_file": str(pki.ca_file)})

    assert (result.up, result.reason, result.phase) == (False, "tls", "tls")
    assert result.detail is not None
    assert "self-signed certificate" in result.detail.replace("self signed", "self-signed")


def test_soon_expiring_certificate_is_up_with_a_warning(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("expiring", valid_until_days=5))
    server.route("/")

    result = check({"url": server.url("/"), "ca_file": str(pki.ca_file)})

    assert result.up, result.detail
    assert result.warnings == [CERT_EXPIRING]
    assert result.cert_days_left is not None
    assert 4.9 < result.cert_days_left <= 5


def test_certificate_warning_threshold_follows_cert_warn_days(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("expiring-3", valid_until_days=5))
    server.route("/")

    result = check({"url": server.url("/"), "ca_file": str(pki.ca_file), "cert_warn_days": 3})

    assert result.up
    assert result.warnings == []


def test_expired_certificate_is_tls(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("expired", valid_from_days=-30, valid_until_days=-1))
    server.route("/")

    result = check({"url": server.url("/"), "ca_file": str(pki.ca_file)})

    assert (result.up, result.reason) == (False, "tls")
    assert result.detail == "certificate verification failed: certificate has expired"


def test_days_left_are_counted_from_the_injected_clock(make_server: MakeServer, pki: Pki) -> None:
    issued = pki.issue("clocked", valid_until_days=90)
    server = make_server(issued)
    server.route("/")
    target = {"url": server.url("/"), "ca_file": str(pki.ca_file)}

    in_80_days = CheckDeps(now=lambda: issued.not_after - timedelta(days=10))
    after_expiry = CheckDeps(now=lambda: issued.not_after + timedelta(hours=1))

    warned = check(target, deps=in_80_days)
    assert warned.up
    assert warned.warnings == [CERT_EXPIRING]
    assert warned.cert_days_left == pytest.approx(10, abs=0.01)
    expired = check(target, deps=after_expiry)
    assert (expired.up, expired.reason, expired.cert_days_left) == (
        False,
        "tls",
        pytest.approx(-1 / 24, abs=0.01),
    )
    assert expired.detail is not None
    assert expired.detail.startswith("certificate expired on ")


def test_certificate_for_another_host_is_tls(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("elsewhere", hosts=("shop.example",)))
    server.route("/")

    result = check({"url": server.url("/"), "ca_file": str(pki.ca_file)})

    assert (result.up, result.reason) == (False, "tls")
    assert result.detail is not None
    assert "mismatch" in result.detail


def test_injected_ssl_context_is_used(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(pki.issue("injected", valid_until_days=60))
    server.route("/")
    url = server.url("/")

    trusting = CheckDeps(ssl_context=lambda ca_file: pki.client_context())

    assert check({"url": url}, deps=trusting).up
    # Without the injected context the system trust store does not know our CA.
    assert check({"url": url}).reason == "tls"


def test_unresolvable_name_is_dns_and_fails_fast() -> None:
    started = time.monotonic()
    # RFC 6761 reserves .invalid: it never resolves, with or without a network.
    result = check({"url": "https://shop.health-check.invalid/", "timeout_s": 3})

    assert (result.up, result.reason, result.phase) == (False, "dns", "dns")
    assert time.monotonic() - started < 3.5


def test_connection_dropped_without_an_answer_is_connection(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/", drop_connection=True)

    result = check({"url": server.url("/")})

    assert (result.up, result.reason, result.phase) == (False, "connection", "response")
    assert result.detail == "server closed the connection without answering during response"


def test_hanging_server_cannot_hang_the_run(make_server: MakeServer) -> None:
    good = make_server()
    good.route("/")
    with hanging_port() as port:
        started = time.monotonic()
        report = run(
            [
                {"name": "hangs", "kind": "http", "url": f"http://127.0.0.1:{port}/", "timeout_s": 60},
                {"name": "fine", "kind": "http", "url": good.url("/"), "timeout_s": 60},
            ],
            # Long enough for the healthy check to answer on a busy CI machine, far below the 60 s timeouts.
            deadline_s=2.0,
        )
        elapsed = time.monotonic() - started

    hangs, fine = report.results
    assert (hangs.up, hangs.reason, hangs.phase) == (False, "timeout", "response")
    assert hangs.detail == "still running at the run deadline (2 s) during response"
    assert fine.up, fine.detail
    assert elapsed < 10  # the deadline, not the 60 s timeout, ended the run


def test_a_check_abandoned_at_its_deadline_is_stopped_not_left_running() -> None:
    with dripping_server() as port:
        report = run([{"name": "drip", "kind": "http", "url": f"http://127.0.0.1:{port}/", "timeout_s": 0.4}])
        (result,) = report.results
        assert (result.reason, result.phase) == ("timeout", "response")
        assert result.detail == "no answer within 0.4 s (during response)"
        # Each byte arrives well within the socket timeout, so only the runner's cancel (shutting the
        # socket) ends the check's thread; without it the thread would read until the server stops.
        threads = [t for t in threading.enumerate() if t.name == "health-check:drip"]
        for thread in threads:
            thread.join(timeout=2)
        assert not any(thread.is_alive() for thread in threads)


def test_each_check_has_its_own_timeout(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/slow", delay_s=1.0)

    report = run(
        [
            {"name": "impatient", "kind": "http", "url": server.url("/slow"), "timeout_s": 0.2},
            {"name": "patient", "kind": "http", "url": server.url("/slow"), "timeout_s": 5},
        ]
    )

    impatient, patient = report.results
    assert impatient.reason == "timeout"
    assert patient.up, patient.detail


def test_checks_run_concurrently(make_server: MakeServer) -> None:
    server = make_server()
    parties = 6
    # Each request is held until all six are in flight together; run one after another, they would break
    # the barrier (status 599) instead of passing.
    server.route("/together", barrier=threading.Barrier(parties, timeout=5))

    report = run(
        [{"name": f"ep{i}", "kind": "http", "url": server.url("/together")} for i in range(parties)],
        deadline_s=8,
    )

    assert [r.up for r in report.results] == [True] * parties, [r.detail for r in report.results]
    assert [r.name for r in report.results] == [f"ep{i}" for i in range(parties)]


def test_unexpected_redirect_names_where_it_was_sent(make_server: MakeServer) -> None:
    server = make_server()
    login = server.url("/login")
    server.route("/api/health", status=302, body="", headers={"Location": login})

    result = check({"url": server.url("/api/health")})

    assert (result.up, result.reason, result.status, result.phase) == (False, "status", 302, "assert")
    assert result.location == login
    assert result.detail == f"status 302 to {login}, expected 200"
    assert result.as_dict()["location"] == login


def test_redirect_location_loses_its_query_and_fragment(make_server: MakeServer) -> None:
    """A Location can carry a session id or token: the report keeps the place, not the parameters."""
    server = make_server()
    server.route("/", status=301, body="", headers={"Location": "https://app.example.com/sso?ticket=SECRET#frag"})

    result = check({"url": server.url("/")})

    assert result.location == "https://app.example.com/sso?…"
    assert "SECRET" not in (result.detail or "") and "frag" not in (result.detail or "")


def test_redirect_without_location_says_so(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/", status=307, body="")

    result = check({"url": server.url("/")})

    assert result.detail == "status 307 to (no Location header), expected 200"


def test_expected_redirect_is_up_and_other_statuses_have_no_location(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/old", status=301, body="", headers={"Location": "/new"})
    server.route("/down", status=503, body="down", headers={"Location": "/ignored"})

    moved = check({"url": server.url("/old"), "expected_status": 301})
    down = check({"url": server.url("/down")})

    assert (moved.up, moved.location) == (True, "/new")
    assert (down.up, down.location, down.detail) == (False, None, "status 503, expected 200")
