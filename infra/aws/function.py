"""Python Lambda functions from `lambdas/<package>/`, built the same way for every handler.

- `LambdaDependencies`: one layer holding the pinned pure-Python dependencies (lambdas/requirements.txt),
  shared by every function so each function archive holds only our code (small, quick to diff).
- `PythonFunction`: function + its log group (retention, the stack's log key where there is one) +
  least-privilege role (logs to its own group, the ENI actions Lambda needs only when placed in the VPC, plus
  the statements the caller passes) + an encrypted DLQ for
  asynchronous invocations that failed every retry, and `add_schedule()` for EventBridge Scheduler triggers
  (time zone aware, retry policy, same DLQ).

Secrets never go into `environment`: pass a Secrets Manager ARN and fetch at run time. Environment keys that
look like secrets are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.trust import scheduler_trust_policy
from infra.component import Component
from infra.naming import Naming
from infra.packaging import build_function_archive, build_layer_archive

RUNTIME = "python3.13"
"""Current Lambda Python runtime (FSBP Lambda.2: supported runtimes only)."""
ARCHITECTURE = "arm64"
"""Graviton: ~20% cheaper per GB-second, and every dependency in the layer is pure Python."""

VPC_NETWORK_INTERFACE_ACTIONS: tuple[str, ...] = (
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
"""ENI actions Lambda performs with the function's role to attach it to a VPC, scoped to this account and region."""
VPC_DESCRIBE_ACTIONS: tuple[str, ...] = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")
"""Describe calls support no resource-level permissions: `"Resource": "*"` is the only form that works."""


def vpc_access_statements(account_id: str, region: str) -> list[dict[str, Any]]:
    """The EC2 part of AWSLambdaVPCAccessExecutionRole and nothing else (no `logs:*` on `*`).

    The actions are the managed policy's EC2 list (v3, 2024-01-05:
    https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html) and
    the Lambda guide's "Execution role and user permissions" list (configuration-vpc.html):
    ec2:DescribeNetworkInterfaces "only works if it's allowed on all resources"; ec2:DeleteNetworkInterface
    needs a resource id or all of them, e.g. `arn:aws:ec2:<region>:<account>:*/*` — which is the scope used
    here for the four mutating actions, so the role cannot touch network interfaces of another region.
    """
    return [
        {
            "Sid": "LambdaManagesItsVpcNetworkInterfaces",
            "Effect": "Allow",
            "Action": list(VPC_NETWORK_INTERFACE_ACTIONS),
            "Resource": [f"arn:aws:ec2:{region}:{account_id}:*/*"],
        },
        {
            "Sid": "LambdaDescribesItsVpcPlacement",
            "Effect": "Allow",
            "Action": list(VPC_DESCRIBE_ACTIONS),
            "Resource": ["*"],
        },
    ]


_SECRET_LIKE = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY)(?!_ARN)", re.IGNORECASE)


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


class LambdaDependencies(Component):
    """The shared dependency layer (one per stack)."""

    def __init__(self, name: str, naming: Naming, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aws", "LambdaDependencies", name, naming, opts)
        self.layer = aws.lambda_.LayerVersion(
            self.child_name("layer"),
            layer_name=naming.physical("lambda-deps"),
            code=pulumi.FileArchive(str(build_layer_archive())),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Pinned pure-Python dependencies of lambdas/ (lambdas/requirements.txt)",
            opts=self.opts(),
        )
        self.arn = self.layer.arn
        self.register_outputs({"arn": self.arn})


@dataclass(frozen=True)
class VpcPlacement:
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]


@dataclass(frozen=True)
class PythonFunctionArgs:
    package: str
    """Directory under lambdas/ (e.g. "auto_confirm"); the handler is `lambdas.<package>.<module>.handler`."""
    layer_arn: pulumi.Input[str]
    """`LambdaDependencies.arn`."""
    description: str
    module: str = "handler"
    """Module of the entry point in `package`; another one when a package has two functions (restore_validation's
    probe). The archive is the package's either way."""
    memory_mb: int = 256
    """256 MB: these handlers are I/O bound; more memory buys CPU only for cold start."""
    timeout_seconds: int = 60
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Plain configuration only (ARNs, names, JSON routing), every key read by the handler's settings
    (tests/infra/test_env_contract.py). STACK is added (see `stack_env`); no POWERTOOLS_* variables: every
    handler names its metrics namespace and an empty service in code, so those would be read by nothing."""
    stack_env: bool = True
    """Add `STACK` (the `Stack` metric dimension). False for a function that publishes no metrics and reads no
    STACK (the restore probe: its validator publishes)."""
    policy_statements: pulumi.Input[Sequence[Mapping[str, Any]]] = field(default_factory=list)
    """Extra IAM statements, as narrow as the function needs (e.g. read one secret)."""
    vpc: VpcPlacement | None = None
    """Inside the VPC only when the function must reach private resources (the database)."""
    log_retention_days: int = 30
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key of this region (`LogKey.arn`); None keeps CloudWatch Logs' default encryption."""
    reserved_concurrency: int | None = None
    """None (the default, and what every function here uses): no reservation. Setting any value needs an
    account concurrency quota >= 101, because Lambda keeps 100 units unreserved; new accounts start at 10 or
    50 and the create fails ("decreases account's UnreservedConcurrentExecution below its minimum value").
    Check with `aws lambda get-account-settings` (AccountLimit.ConcurrentExecutions) and raise the quota first
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html)."""
    maximum_retry_attempts: int = 2
    """Asynchronous invocations (SNS, Scheduler) retried this many times before the DLQ."""

    @property
    def label(self) -> str:
        """The function's name within the stack: the package's, plus the module's when it is not `handler`."""
        parts = [self.package] if self.module == "handler" else [self.package, self.module]
        return "-".join(parts).replace("_", "-")


class PythonFunction(Component):
    def __init__(
        self, name: str, args: PythonFunctionArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "PythonFunction", name, naming, opts)
        leaked = sorted(k for k in args.environment if _SECRET_LIKE.search(k))
        if leaked:
            raise ValueError(
                f"lambda {args.package}: environment keys {', '.join(leaked)} look like secrets; "
                "pass a Secrets Manager ARN instead"
            )
        self.timeout_seconds = args.timeout_seconds
        function_name = naming.physical(args.label)
        self.log_group = aws.cloudwatch.LogGroup(
            self.child_name("logs"),
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            opts=self.opts(),
        )
        self.role = aws.iam.Role(
            self.child_name("role"),
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            description=f"Runs the {args.label} Lambda",
            opts=self.opts(),
        )
        self.dead_letter_queue = aws.sqs.Queue(
            self.child_name("dlq"),
            name=naming.physical(args.label, "dlq"),
            sqs_managed_sse_enabled=True,
            message_retention_seconds=14 * 24 * 3600,  # the maximum: time for a person to look
            opts=self.opts(),
        )
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self._region = aws.get_region_output(opts=invoke).region
        in_vpc = args.vpc is not None
        base_statements = pulumi.Output.all(
            self.log_group.arn, self.dead_letter_queue.arn, self._account_id, self._region
        ).apply(
            lambda values: [
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": [f"{values[0]}:*"],
                },
                {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [values[1]]},
                *(vpc_access_statements(values[2], values[3]) if in_vpc else []),
            ]
        )
        policy = pulumi.Output.all(base_statements, args.policy_statements).apply(
            lambda parts: json.dumps({"Version": "2012-10-17", "Statement": [*parts[0], *parts[1]]})
        )
        role_policy = aws.iam.RolePolicy(self.child_name("policy"), role=self.role.id, policy=policy, opts=self.opts())
        depends: list[pulumi.Resource] = [role_policy, self.log_group]
        vpc_config = None
        if args.vpc is not None:
            # ENI management for VPC placement comes from the inline policy above (vpc_access_statements), not
            # AWSLambdaVPCAccessExecutionRole: that managed policy also grants logs:CreateLogGroup,
            # CreateLogStream and PutLogEvents on "*", which would undo the per-log-group scoping.
            vpc_config = aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=list(args.vpc.subnet_ids), security_group_ids=list(args.vpc.security_group_ids)
            )
        environment = {**({"STACK": naming.stack} if args.stack_env else {}), **args.environment}
        self.function = aws.lambda_.Function(
            self.child_name("function"),
            name=function_name,
            description=args.description,
            runtime=RUNTIME,
            architectures=[ARCHITECTURE],
            handler=f"lambdas.{args.package}.{args.module}.handler",
            code=pulumi.FileArchive(str(build_function_archive(args.package))),
            layers=[args.layer_arn],
            role=self.role.arn,
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
            vpc_config=vpc_config,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=self.log_group.name),
            opts=self.opts(depends_on=depends),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            self.child_name("async"),
            function_name=self.function.name,
            maximum_retry_attempts=args.maximum_retry_attempts,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=self.dead_letter_queue.arn
                )
            ),
            opts=self.opts(),
        )
        self.function_name = self.function.name
        self.arn = self.function.arn
        self.log_group_name = self.log_group.name
        self.label = args.label
        self.in_vpc = args.vpc is not None
        # The contract above: a secret reaches a handler as `<NAME>_SECRET_ARN`, fetched at run time. Such a
        # function inside the VPC calls Secrets Manager from there (network.require_secrets_manager_endpoint).
        self.secret_arn_keys = tuple(sorted(k for k in args.environment if k.endswith("SECRET_ARN")))
        self.register_outputs({"functionName": self.function_name, "arn": self.arn})

    def add_schedule(
        self,
        part: str,
        expression: str,
        timezone: str,
        payload: Mapping[str, Any] | None = None,
        retry_attempts: int = 2,
        maximum_event_age_seconds: int = 3600,
    ) -> aws.scheduler.Schedule:
        """Invoke this function on an EventBridge Scheduler expression evaluated in `timezone`.

        Retries and the DLQ cover the invocation itself; failures inside the function are the function's
        asynchronous retries and DLQ. A missed run older than `maximum_event_age_seconds` is dropped to the
        DLQ rather than run late, because the next scheduled run does the same work.
        """
        role = aws.iam.Role(
            self.child_name(part, "scheduler-role"),
            # Only for schedules of this account's default schedule group (infra/aws/trust.py).
            assume_role_policy=pulumi.Output.all(self._account_id, self._region).apply(
                lambda values: scheduler_trust_policy(values[0], values[1])
            ),
            opts=self.opts(),
        )
        aws.iam.RolePolicy(
            self.child_name(part, "scheduler-policy"),
            role=role.id,
            policy=pulumi.Output.all(self.function.arn, self.dead_letter_queue.arn).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arns[0]},
                            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arns[1]},
                        ],
                    }
                )
            ),
            opts=self.opts(),
        )
        return aws.scheduler.Schedule(
            self.child_name(part, "schedule"),
            name=self.naming.physical(self.component_name, part),
            schedule_expression=expression,
            schedule_expression_timezone=timezone,
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            target=aws.scheduler.ScheduleTargetArgs(
                arn=self.function.arn,
                role_arn=role.arn,
                input=json.dumps(payload or {"source": "shipyard.scheduler", "job": self.component_name}),
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_retry_attempts=retry_attempts,
                    maximum_event_age_in_seconds=maximum_event_age_seconds,
                ),
                dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(arn=self.dead_letter_queue.arn),
            ),
            opts=self.opts(),
        )
