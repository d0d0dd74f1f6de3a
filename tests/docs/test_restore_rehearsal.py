"""docs/runbooks/restore.md rehearsed in its documented order, with the variables it defines, against moto on
127.0.0.1: gather the names (0), point-in-time restore (1a), give the copy a managed secret (2), switch the app
over (3: scaling suspended, job paused, two renames, Pulumi state pointed at the copy) and roll back (4).

The page's own shell blocks run in one bash process with ``set -euo pipefail``; the real AWS CLI v2 answers
from moto, which is seeded like the stack (instance, subnet and parameter groups, security groups, ECS service
with its scalable target, the auto-confirm function), behind tests/docs/async_rds.py, which plays RDS's
asynchrony that moto lacks (a renamed instance is "not found" for a while and its old name still taken; a
managed secret appears only once the modify is applied): the page's version before issue 23 stops there, on the
waiter after the first rename. Only what is not AWS is stood in for: ``pulumi`` (stack
outputs from a dict, export/import of a small state file), ``sleep`` (the polls are bounded loops; no need to
wait), and the local validator run (``make rds-ca``, ``python -m lambdas.restore_validation``). Not rehearsed,
because moto does not implement them: the AWS Backup restore and copy jobs (1b's second half) and the
validator Lambda's invoke (moto runs Lambdas only in Docker); those commands are still parsed and sent by
test_aws_commands. Step 5 (delete the old instance) follows a successful switch, not a rollback: its two
commands are covered there too.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.docs import doc_checks
from tests.docs.async_rds import async_rds
from tests.docs.awscli_v2 import CliUnavailable, cli_path

PAGE = doc_checks.ROOT / "docs" / "runbooks" / "restore.md"
REHEARSED = ("## 0.", "## 1a.", "## 2.", "## 3.", "## 4.")
# A region other than the environment's default: the page's own exports must select it.
REGION = "eu-west-1"

PULUMI = """#!/usr/bin/env bash
# Stand-in for the Pulumi CLI: stack outputs from $OUTPUTS, a small state file for export/import.
set -euo pipefail
echo "pulumi $*" >> "$REHEARSAL_LOG"
case "$1 ${2:-}" in
  "stack output") jq -er --arg key "$3" '.[$key]' "$OUTPUTS" ;;
  "stack --show-name") echo rehearsal ;;
  "stack export") cp "$STATE" "$4" ;;
  "stack import") cp "$4" "$STATE" ;;
  *) ;;
esac
"""
NO_OP = '#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "$REHEARSAL_LOG"\n'


def _blocks(text: str) -> list[str]:
    """The shell blocks of the rehearsed sections, in page order."""
    blocks: list[str] = []
    section = ""
    inside: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line
        if line.startswith("```"):
            if inside is None and line.strip() in ("```sh", "```bash"):
                inside = []
            elif inside is not None:
                if section.startswith(REHEARSED) and "lambda invoke" not in "\n".join(inside):
                    blocks.append("\n".join(inside))
                inside = None
            continue
        if inside is not None:
            inside.append(line)
    return blocks


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _seed(endpoint: str, name: str) -> dict[str, Any]:
    """Moto made to look like a deployed stack; returns the stack outputs the page reads."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    ec2, rds, ecs = client("ec2"), client("rds"), client("ecs")
    db = f"{name}-db"
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("ab")
    ]
    db_sg = ec2.create_security_group(GroupName=db, Description="database", VpcId=vpc)["GroupId"]
    validator_sg = ec2.create_security_group(
        GroupName=f"{name}-restored-db",
        Description="restore validator probe",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": f"{name}-restored-db"}]}
        ],
    )["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName=db, DBSubnetGroupDescription="db", SubnetIds=subnets)
    rds.create_db_parameter_group(
        DBParameterGroupName=f"{db}-postgres17", DBParameterGroupFamily="postgres17", Description="db"
    )
    rds.create_db_instance(
        DBInstanceIdentifier=db,
        Engine="postgres",
        EngineVersion="17.4",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="app_admin",
        ManageMasterUserPassword=True,
        DBSubnetGroupName=db,
        DBParameterGroupName=f"{db}-postgres17",
        VpcSecurityGroupIds=[db_sg],
        BackupRetentionPeriod=7,
        EnableIAMDatabaseAuthentication=True,
        DeletionProtection=True,
    )
    cluster = f"{name}-cluster"
    ecs.create_cluster(clusterName=cluster)
    task = ecs.register_task_definition(
        family=f"{name}-api", containerDefinitions=[{"name": "api", "image": "api:1", "memory": 512}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=cluster, serviceName=f"{name}-api", taskDefinition=task, desiredCount=2)
    client("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/{cluster}/{name}-api",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=2,
        MaxCapacity=6,
    )
    role = client("iam").create_role(
        RoleName=f"{name}-auto-confirm",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    client("lambda").create_function(
        FunctionName=f"{name}-auto-confirm",
        Runtime="python3.13",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": _zip()},
    )
    return {
        "region": REGION,
        "dbInstanceIdentifier": db,
        "clusterName": cluster,
        "serviceName": f"{name}-api",
        "autoConfirmFunction": f"{name}-auto-confirm",
        "backupRoleArn": f"arn:aws:iam::123456789012:role/{name}-backup",
        "backupVaultName": f"{name}-vault",
        "validator_sg": validator_sg,
        "db_sg": db_sg,
    }


def _script(blocks: list[str]) -> str:
    # The page's blocks, unchanged; only the fixed restore time of the example becomes "latest" (moto
    # accepts either, and the example's date may lie outside the seeded instance's life).
    body = "\n".join(blocks)
    return "set -euo pipefail\n" + body + '\ndeclare -p DB OLD RESTORED NEW_ID TASKS SECRET > "$REHEARSAL_VARS"\n'


@pytest.fixture(scope="module")
def aws_cli() -> Path:
    try:
        return cli_path()
    except CliUnavailable as exc:
        pytest.fail(f"AWS CLI v2 missing: {exc}")


def test_restore_runbook_rehearsed_in_order(aws_cli: Path, moto_endpoint: str, tmp_path: Path) -> None:
    if shutil.which("jq") is None or shutil.which("bash") is None:
        pytest.fail("the rehearsal runs the page as its reader would: it needs bash and jq (apt-get install jq)")
    with async_rds(moto_endpoint) as (proxy, played):
        _rehearse(aws_cli, moto_endpoint, proxy, played, tmp_path)


def _rehearse(aws_cli: Path, moto_endpoint: str, proxy: str, played: list[str], tmp_path: Path) -> None:
    name = f"rehearsal{uuid.uuid4().hex[:6]}"
    outputs = _seed(moto_endpoint, name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").symlink_to(aws_cli)
    for tool, text in {"pulumi": PULUMI, "sleep": NO_OP, "make": NO_OP, "python": NO_OP}.items():
        (bin_dir / tool).write_text(text)
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    state = {
        "deployment": {
            "resources": [
                {"type": "aws:rds/instance:Instance", "id": "db-ORIGINAL", "outputs": {"resourceId": "db-ORIGINAL"}}
            ]
        }
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    env = doc_checks.cli_environment(proxy, tmp_path)
    del env["AWS_DEFAULT_REGION"]  # the page selects the stack's region itself (step 0)
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        OUTPUTS=str(tmp_path / "outputs.json"),
        STATE=str(tmp_path / "state.json"),
        REHEARSAL_LOG=str(tmp_path / "rehearsal.log"),
        REHEARSAL_VARS=str(tmp_path / "vars.sh"),
    )
    blocks = _blocks(PAGE.read_text())
    assert len(blocks) == 5, "sections 0, 1a, 2 (secret), 3 and 4 each have one block to rehearse"
    script = _script(blocks).replace("--restore-time 2026-11-25T09:41:00Z", "--use-latest-restorable-time")
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"the page stopped (exit {done.returncode}):\n{done.stderr[-3000:]}"

    variables = dict(re.findall(r'declare -\S+ (\w+)="([^"]*)"', (tmp_path / "vars.sh").read_text()))
    rds = boto3.client(
        "rds", endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )

    def instance(identifier: str) -> dict[str, Any]:
        return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]

    db, old = variables["DB"], variables["OLD"]
    # after the rollback (4): the original serves under the stack's name, the copy is kept aside
    original, copy = instance(db), instance(f"{db}-restore-failed")
    assert old.startswith(f"{db}-old-") and variables["RESTORED"].startswith(f"{db}-r")
    # (moto gives every instance the same DbiResourceId, so the copy is told apart by the tags 1a gave it)
    tags = {i: {t["Key"]: t["Value"] for t in x["TagList"]} for i, x in (("original", original), ("copy", copy))}
    assert tags["copy"].get("purpose") == "restore" and tags["copy"].get("stack") == "rehearsal"
    assert "purpose" not in tags["original"]
    # the copy (1a) was restored with the stack's groups, the validator's group and IAM auth
    assert {g["VpcSecurityGroupId"] for g in copy["VpcSecurityGroups"]} == {outputs["db_sg"], outputs["validator_sg"]}
    assert copy["IAMDatabaseAuthenticationEnabled"] and copy["DBSubnetGroup"]["DBSubnetGroupName"] == db
    # step 2 polled until the managed secret was there (moto reports "creating" once, then "active")
    assert variables["SECRET"].startswith("arn:aws:secretsmanager:")
    # step 3 pointed Pulumi's state at the copy: its resource id
    restored_state = json.loads((tmp_path / "state-restored.json").read_text())
    assert restored_state["deployment"]["resources"][0]["id"] == copy["DbiResourceId"] == variables["NEW_ID"]
    # and (4) the state from before the restore is back
    assert json.loads((tmp_path / "state.json").read_text()) == state
    # the service runs the noted count again, scaling resumed, the job unpaused
    session = boto3.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name=REGION)
    ecs = session.client("ecs", endpoint_url=moto_endpoint)
    service = ecs.describe_services(cluster=outputs["clusterName"], services=[outputs["serviceName"]])["services"][0]
    assert service["desiredCount"] == int(variables["TASKS"]) == 2
    scaling = session.client("application-autoscaling", endpoint_url=moto_endpoint)
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"][-1:]
    assert target.get("SuspendedState") == {
        "DynamicScalingInSuspended": False,
        "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }
    lam = session.client("lambda", endpoint_url=moto_endpoint)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(
        FunctionName=outputs["autoConfirmFunction"]
    )
    # the stand-in did play RDS's delays: two renames' windows each way, and the secret's
    assert sum(p.startswith("not-found") for p in played) == 4, played
    assert any(p.startswith("no-secret-yet") for p in played), played
    # scaling suspended before the count goes to 0 and resumed after it is back, in the switch and the rollback
    steps = [p for p in played if p.startswith(("desired-count", "scaling"))]
    assert steps == ["scaling suspended", "desired-count 0", "desired-count 2", "scaling resumed"] * 2, steps
    log = (tmp_path / "rehearsal.log").read_text()
    assert "pulumi up" in log and "pulumi refresh --yes" in log
