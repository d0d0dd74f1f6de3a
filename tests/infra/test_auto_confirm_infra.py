"""The auto-confirm job on AWS: hourly, in the VPC, least privilege, alarmed — for both stacks."""

from __future__ import annotations

import json

from infra.aws.function import vpc_access_statements
from infra.harness import Resource, StackRun
from tests.infra.conftest import evaluate

FUNCTION = "aws:lambda/function:Function"


def _function(run: StackRun) -> Resource:
    return run.one(FUNCTION, "auto-confirm-function-function")


def test_function_runs_the_handler_in_private_subnets_with_its_own_group(any_stack: StackRun) -> None:
    function = _function(any_stack)
    assert function.inputs["handler"] == "lambdas.auto_confirm.handler.handler"
    assert function.inputs["runtime"] == "python3.13"
    assert function.inputs["architectures"] == ["arm64"]
    # No reservation: overlap is safe (SKIP LOCKED) and a reservation fails below a quota of 101.
    assert function.inputs.get("reservedConcurrentExecutions") is None
    private = {r.id for r in any_stack.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "private"}
    assert set(function.inputs["vpcConfig"]["subnetIds"]) == private
    group = any_stack.one("aws:ec2/securityGroup:SecurityGroup", "auto-confirm-sg")
    assert function.inputs["vpcConfig"]["securityGroupIds"] == [group.id]
    rule = any_stack.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "database-from-auto-confirm")
    assert rule.inputs["referencedSecurityGroupId"] == group.id
    assert rule.inputs["fromPort"] == 5432
    database_group = any_stack.one("aws:ec2/securityGroup:SecurityGroup", "database-sg")
    assert rule.inputs["securityGroupId"] == database_group.id


def test_environment_names_the_secret_never_holds_it(any_stack: StackRun) -> None:
    function = _function(any_stack)
    variables = function.inputs["environment"]["variables"]
    instance = any_stack.one("aws:rds/instance:Instance")
    assert variables["DATABASE_SECRET_ARN"] == instance.outputs["masterUserSecrets"][0]["secretArn"]
    assert variables["DATABASE_HOST"] == instance.outputs["address"]
    assert variables["DATABASE_NAME"] == instance.inputs["dbName"]
    assert variables["STACK"] == any_stack.stack
    assert not function.secret_inputs
    assert not any("password" in key.lower() for key in variables)


def test_role_reads_exactly_the_database_secret(any_stack: StackRun) -> None:
    policy = json.loads(any_stack.one("aws:iam/rolePolicy:RolePolicy", "auto-confirm-function-policy").inputs["policy"])
    secret_arn = _function(any_stack).inputs["environment"]["variables"]["DATABASE_SECRET_ARN"]
    reads = [s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
    assert reads == [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [secret_arn]}]
    decrypts = [s for s in policy["Statement"] if "kms:Decrypt" in s["Action"]]
    # Prod encrypts the database (and its secret) with a customer key; staging uses AWS-managed keys.
    assert len(decrypts) == (1 if any_stack.stack == "prod" else 0)
    # Describe calls take only "*" (AWS); they come with the VPC placement, and nothing else is unscoped.
    unscoped = [s for s in policy["Statement"] if s["Resource"] in ("*", ["*"])]
    assert unscoped == [vpc_access_statements("123456789012", "us-east-1")[1]]


def test_hourly_schedule_in_the_configured_time_zone_with_retries_and_dlq(any_stack: StackRun) -> None:
    schedule = any_stack.one("aws:scheduler/schedule:Schedule", "auto-confirm-function-hourly-schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(1 hour)"
    assert schedule.inputs["scheduleExpressionTimezone"] == "America/Sao_Paulo"
    target = schedule.inputs["target"]
    assert target["arn"] == _function(any_stack).outputs["arn"]
    assert json.loads(target["input"]) == {"batch_size": 500}
    assert target["retryPolicy"]["maximumRetryAttempts"] == 2
    dlq = any_stack.one("aws:sqs/queue:Queue", "auto-confirm-function-dlq")
    assert target["deadLetterConfig"]["arn"] == dlq.outputs["arn"]
    assert dlq.inputs["sqsManagedSseEnabled"] is True


def test_the_seed_alarms_watch_the_job(any_stack: StackRun) -> None:
    alarms = {a.name: a.inputs for a in any_stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    for name in (
        "monitoring-auto-confirm-failed",
        "monitoring-auto-confirm-not-running",
        "monitoring-auto-confirm-backlog",
        "monitoring-dlq-depth-auto-confirm",
    ):
        assert name in alarms, name
        assert alarms[name]["alarmActions"] and alarms[name]["okActions"]
    assert alarms["monitoring-auto-confirm-not-running"]["treatMissingData"] == "breaching"
    assert alarms["monitoring-auto-confirm-backlog"]["threshold"] == 7200


def test_schedule_and_batch_come_from_config() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:jobs": {"timezone": "UTC", "autoConfirm": {"schedule": "cron(5 * * * ? *)", "batchSize": 50}}
        },
    )
    schedule = run.one("aws:scheduler/schedule:Schedule", "auto-confirm-function-hourly-schedule")
    assert schedule.inputs["scheduleExpression"] == "cron(5 * * * ? *)"
    assert schedule.inputs["scheduleExpressionTimezone"] == "UTC"
    assert json.loads(schedule.inputs["target"]["input"]) == {"batch_size": 50}


def test_disabled_job_creates_nothing() -> None:
    run = evaluate("staging", config_overrides={"shipyard:jobs": {"autoConfirm": {"enabled": False}}})
    assert not [r for r in run.resources if r.name.startswith("auto-confirm")]
    assert "autoConfirmFunction" not in run.outputs


def test_no_function_reserves_concurrency(any_stack: StackRun) -> None:
    """Any reservation needs an account quota >= 101 (Lambda keeps 100 unreserved); new accounts have 10 or 50."""
    reserving = sorted(f.name for f in any_stack.of_type(FUNCTION) if f.inputs.get("reservedConcurrentExecutions"))
    assert reserving == []
