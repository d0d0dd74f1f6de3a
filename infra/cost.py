"""Monthly cost estimate of an evaluated stack, from the dated list-price table in infra/prices.json.

One item per billable dimension of a resource (instance-hours, storage, public IPv4, ...), priced at the
on-demand list price of the resource's region (falling back to us-east-1, and saying so). Items whose cost
depends on traffic are `usage_based`: they carry a stated baseline assumption (ALB LCUs, scheduled Lambda
runs, one full copy of backed-up storage) or cost 0 with the unit price in the note, so the total is the
bill of a quiet month, not a forecast. The budget is the stack file's `shipyard:budget` (monthlyUsd, source),
else the tier's (staging <= 45 USD, prod <= 200 USD); the plan says whether it is met, and
`plan --fail-over-budget` exits 1 when it is not (for CI).

JSON (`plan --json`): `cost: {"monthly_usd_total", "as_of", "currency", "goal": {"tier", "monthly_usd_max",
"met", "source"}, "items": [{"urn", "name", "type", "item", "quantity", "unit", "unit_price", "monthly_usd",
"usage_based", "note"}]}`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from infra.config import ConfigError
from infra.harness import Resource, StackRun
from infra.plan import PlanReport, register_report

PRICES_FILE = Path(__file__).with_name("prices.json")
FALLBACK_REGION = "us-east-1"
GOALS_USD = {"staging": 45.0, "prod": 200.0}
"""Monthly budget per tier (issue 9): staging one of everything, prod with HA."""


@dataclass(frozen=True)
class Price:
    key: str
    region: str
    unit: str
    price: float
    source: str


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    currency: str
    hours_per_month: float
    assumptions: Mapping[str, float]
    rows: Mapping[tuple[str, str], Price]

    def lookup(self, key: str, region: str) -> tuple[Price | None, str]:
        """(price, note): exact region, else the provider-wide row, else us-east-1 with a note."""
        for candidate in (region, "*"):
            if (key, candidate) in self.rows:
                return self.rows[(key, candidate)], ""
        if (key, FALLBACK_REGION) in self.rows:
            return self.rows[(key, FALLBACK_REGION)], f"no {region} price in prices.json; {FALLBACK_REGION} used"
        return None, f"no list price for {key!r} in infra/prices.json"


@cache
def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    document = json.loads(path.read_text())
    rows = {}
    for row in document["prices"]:
        price = Price(row["key"], row["region"], row["unit"], float(row["price"]), row["source"])
        rows[(price.key, price.region)] = price
    return PriceTable(
        as_of=document["as_of"],
        currency=document["currency"],
        hours_per_month=float(document["hours_per_month"]),
        assumptions=document["assumptions"],
        rows=rows,
    )


@dataclass
class Item:
    urn: str
    name: str
    type: str
    item: str
    quantity: float
    unit: str
    unit_price: float
    monthly_usd: float
    usage_based: bool = False
    note: str = ""
    unpriced: bool = False


@dataclass
class _Estimator:
    run: StackRun
    prices: PriceTable
    items: list[Item] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.run.resources}
        self.default_region = self.run.config.get("aws:region", FALLBACK_REGION)

    # ------------------------------------------------------------------------------------------- helpers
    def region_of(self, resource: Resource) -> str:
        if resource.inputs.get("region"):
            return str(resource.inputs["region"])
        if resource.provider:
            provider = self.by_urn.get(resource.provider.rsplit("::", 1)[0])
            if provider is not None and provider.inputs.get("region"):
                return str(provider.inputs["region"])
        return self.default_region

    def add(
        self,
        resource: Resource,
        item: str,
        key: str,
        quantity: float,
        *,
        hourly: bool = False,
        usage_based: bool = False,
        note: str = "",
        region: str | None = None,
    ) -> None:
        price, lookup_note = self.prices.lookup(key, region or self.region_of(resource))
        unit_price = price.price if price else 0.0
        monthly = quantity * unit_price * (self.prices.hours_per_month if hourly else 1.0)
        unit = price.unit if price else "?"
        self.items.append(
            Item(
                urn=resource.urn,
                name=resource.name,
                type=resource.type,
                item=item,
                quantity=round(quantity, 4),
                unit=unit,
                unit_price=unit_price,
                monthly_usd=round(monthly, 2),
                usage_based=usage_based,
                note="; ".join(n for n in (note, lookup_note) if n),
                unpriced=price is None,
            )
        )

    def dependencies(self, resource: Resource, type_: str) -> list[Resource]:
        return [self.by_urn[d] for d in resource.depends_on if d in self.by_urn and self.by_urn[d].type == type_]

    def dependents(self, resource: Resource, type_: str) -> list[Resource]:
        return [r for r in self.run.of_type(type_) if resource.urn in r.depends_on]

    # ------------------------------------------------------------------------------------------- AWS
    def rds_instance(self, r: Resource) -> None:
        props = r.inputs
        multi_az = bool(props.get("multiAz"))
        copies = 2 if multi_az else 1
        klass = str(props.get("instanceClass"))
        az = "Multi-AZ: primary + standby" if multi_az else "Single-AZ"
        self.add(r, f"RDS {klass} instance-hours ({az})", f"rds.instance.{klass}", copies, hourly=True)
        storage_type = str(props.get("storageType") or "gp2")
        gigabytes = float(props.get("allocatedStorage") or 0)
        self.add(
            r, f"RDS {storage_type} storage {gigabytes:g} GB ({az})", f"rds.storage.{storage_type}", gigabytes * copies
        )
        if props.get("manageMasterUserPassword"):
            self.add(r, "Secrets Manager secret (RDS-managed master password)", "secretsmanager.secret", 1)
        self.add(
            r,
            "RDS automated backup storage",
            "rds.backup_storage",
            0,
            usage_based=True,
            note="free up to the provisioned size in-region; beyond that per GB-month",
        )

    def ecs_service(self, r: Resource) -> None:
        tasks = float(r.inputs.get("desiredCount") or 0)
        definitions = self.dependencies(r, "aws:ecs/taskDefinition:TaskDefinition")
        if not definitions:
            self.add(r, "Fargate tasks (task definition not found)", "fargate.vcpu.arm64", 0, note="not estimated")
            return
        definition = definitions[0].inputs
        platform = definition.get("runtimePlatform") or {}
        arch = "arm64" if str(platform.get("cpuArchitecture", "X86_64")).upper() == "ARM64" else "x86_64"
        vcpu = float(definition.get("cpu") or 256) / 1024
        memory_gb = float(definition.get("memory") or 512) / 1024
        for capacity, count in _tasks_by_capacity(r.inputs, tasks):
            spot = capacity == "FARGATE_SPOT"
            label = f"{count:g} task(s) x {vcpu:g} vCPU/{memory_gb:g} GB {arch}{' on Spot' if spot else ''}"
            prefix, name = ("fargate_spot", "Fargate Spot") if spot else ("fargate", "Fargate")
            self.add(r, f"{name} vCPU-hours ({label})", f"{prefix}.vcpu.{arch}", count * vcpu, hourly=True)
            self.add(r, f"{name} GB-hours ({label})", f"{prefix}.gb.{arch}", count * memory_gb, hourly=True)
        if (r.inputs.get("networkConfiguration") or {}).get("assignPublicIp"):
            self.add(r, f"public IPv4 for {tasks:g} task(s)", "public_ipv4.hour", tasks, hourly=True)

    def load_balancer(self, r: Resource) -> None:
        kind = str(r.inputs.get("loadBalancerType") or "application")
        key = "alb" if kind == "application" else "nlb"
        self.add(r, f"{kind} load balancer hours", f"{key}.hour", 1, hourly=True)
        if kind == "application":
            lcu = float(self.prices.assumptions["alb_average_lcu"])
            self.add(
                r,
                f"ALB capacity units (baseline {lcu:g} LCU average)",
                "alb.lcu_hour",
                lcu,
                hourly=True,
                usage_based=True,
                note="grows with new connections, active connections, bytes and rule evaluations",
            )
        if not r.inputs.get("internal"):
            zones = len(r.inputs.get("subnets") or r.inputs.get("subnetMappings") or []) or 2
            self.add(r, f"public IPv4 ({zones} AZ addresses)", "public_ipv4.hour", zones, hourly=True)

    def nat_gateway(self, r: Resource) -> None:
        self.add(r, "NAT gateway hours", "nat.hour", 1, hourly=True)
        self.add(r, "NAT data processing", "nat.gb", 0, usage_based=True, note="per GB through the gateway")

    def eip(self, r: Resource) -> None:
        self.add(r, "public IPv4 (Elastic IP)", "public_ipv4.hour", 1, hourly=True)

    def vpc_endpoint(self, r: Resource) -> None:
        if r.inputs.get("vpcEndpointType") != "Interface":
            return  # gateway endpoints (S3, DynamoDB) are free
        zones = len(r.inputs.get("subnetIds") or []) or 1
        service = str(r.inputs.get("serviceName", "")).split(".", 3)[-1]  # com.amazonaws.<region>.<service>
        self.add(r, f"interface endpoint {service} ({zones} AZ)", "vpc_endpoint.interface.hour", zones, hourly=True)

    def http_api(self, r: Resource) -> None:
        millions = float(self.prices.assumptions["http_api_million_requests"])
        self.add(
            r,
            f"HTTP API requests (baseline {millions:g} million a month)",
            "apigateway.http.requests",
            millions,
            usage_based=True,
            note="per million requests; no hourly charge, and the VPC link of an HTTP API costs nothing",
        )

    def discovery_service(self, r: Resource) -> None:
        # One registered instance per running task of the ECS services that register here.
        tasks = sum(float(s.inputs.get("desiredCount") or 0) for s in self.dependents(r, ECS_SERVICE))
        self.add(r, f"Cloud Map registered instances ({tasks:g})", "cloudmap.instance", tasks)
        self.add(
            r,
            "Cloud Map discovery calls",
            "cloudmap.discovery",
            0,
            usage_based=True,
            note="API Gateway looks the tasks up per request burst (cached); per million DiscoverInstances calls",
        )

    def web_acl(self, r: Resource) -> None:
        rules = r.inputs.get("rules") or []
        self.add(r, "WAF web ACL", "waf.web_acl", 1)
        self.add(r, f"WAF rules ({len(rules)})", "waf.rule", len(rules))
        self.add(r, "WAF requests", "waf.requests", 0, usage_based=True, note="per million requests inspected")

    def waf_logging(self, r: Resource) -> None:
        """WAF request logs into CloudWatch Logs (vended logs): ingestion plus storage over the group's retention."""
        requests = float(self.prices.assumptions["waf_logged_requests_per_acl_month"])
        record_bytes = float(self.prices.assumptions["waf_log_record_bytes"])
        gigabytes = requests * record_bytes / 1e9
        groups = self.dependencies(r, LOG_GROUP)
        retention_days = float(groups[0].inputs.get("retentionInDays") or 0) if groups else 0.0
        note = f"baseline {requests / 1e6:g}M logged requests/month at {record_bytes:g} bytes each"
        self.add(
            r, f"WAF log ingestion ({gigabytes:g} GB)", "cloudwatch.logs.ingest", gigabytes, usage_based=True, note=note
        )
        # Steady state: each month's logs are kept `retention_days`, so that many days' worth is stored at a time.
        stored = gigabytes * retention_days / 30.4
        self.add(
            r,
            f"WAF log storage ({stored:.2f} GB over {retention_days:g} days)",
            "cloudwatch.logs.storage",
            stored,
            usage_based=True,
            note=f"{note}; billed on compressed size, so this is an upper bound",
        )

    def metric_alarm(self, r: Resource) -> None:
        queries = r.inputs.get("metricQueries") or []
        metrics = sum(1 for q in queries if isinstance(q, Mapping) and q.get("metric") is not None) or 1
        self.add(r, f"CloudWatch alarm ({metrics} metric(s))", "cloudwatch.alarm.metric", metrics)

    def cache_nodes(self, r: Resource) -> None:
        engine = "valkey" if str(r.inputs.get("engine", "redis")).lower() == "valkey" else "redis"
        nodes = float(r.inputs.get("numCacheClusters") or r.inputs.get("numCacheNodes") or 1)
        node_type = str(r.inputs.get("nodeType"))
        self.add(
            r, f"ElastiCache {engine} {node_type} x {nodes:g}", f"elasticache.{engine}.{node_type}", nodes, hourly=True
        )

    def backup_plan(self, r: Resource) -> None:
        copies = float(self.prices.assumptions["backup_copies_of_allocated_storage"])
        gigabytes = sum(float(db.inputs.get("allocatedStorage") or 0) for db in self.run.of_type(RDS)) * copies
        note = f"incremental snapshots; baseline assumes {copies:g} full copy of the databases' allocated storage"
        self.add(
            r,
            f"AWS Backup recovery points ({gigabytes:g} GB)",
            "backup.rds_warm",
            gigabytes,
            usage_based=True,
            note=note,
        )
        for rule in r.inputs.get("rules") or []:
            for action in rule.get("copyActions") or [] if isinstance(rule, Mapping) else []:
                destination = str(action.get("destinationVaultArn") or "")
                region = destination.split(":")[3] if destination.count(":") >= 5 else self.region_of(r)
                self.add(
                    r,
                    f"offsite copy in {region} ({gigabytes:g} GB)",
                    "backup.rds_warm",
                    gigabytes,
                    usage_based=True,
                    note=note,
                    region=region,
                )
                self.add(
                    r,
                    "cross-region copy transfer",
                    "backup.cross_region_transfer",
                    gigabytes,
                    usage_based=True,
                    note="per GB copied; incremental after the first copy",
                )

    def lambda_function(self, r: Resource) -> None:
        runs = sum(_runs_per_month(s.inputs.get("scheduleExpression")) for s in self.dependents(r, SCHEDULE))
        arch = "arm64" if "arm64" in (r.inputs.get("architectures") or []) else "x86_64"
        seconds = float(self.prices.assumptions["lambda_assumed_duration_seconds"])
        gb_seconds = runs * float(r.inputs.get("memorySize") or 128) / 1024 * seconds
        note = f"{runs:g} scheduled runs/month at {seconds:g}s each; event-driven invocations extra"
        self.add(r, "Lambda compute", f"lambda.gb_second.{arch}", gb_seconds, usage_based=True, note=note)
        self.add(r, "Lambda requests", "lambda.requests", runs / 1_000_000, usage_based=True, note=note)

    def sqs_event_source(self, r: Resource) -> None:
        """Lambda long-polls an SQS queue it drains even when the queue is empty, and SQS bills each receive.
        AWS does not publish the idle poll rate; the baseline is `sqs_event_source_idle_pollers` pollers each
        waiting the longest long poll (20 s), i.e. three requests a minute per poller."""
        if ":sqs:" not in str(r.inputs.get("eventSourceArn", "")):
            return
        pollers = float(self.prices.assumptions["sqs_event_source_idle_pollers"])
        requests = pollers * self.prices.hours_per_month * 3600 / 20
        self.add(
            r,
            f"SQS receives while idle ({pollers:g} long-polling pollers)",
            "sqs.requests",
            requests / 1_000_000,
            usage_based=True,
            note="each batch of messages adds a receive and a delete",
        )

    def usage_only(self, r: Resource, item: str, key: str, note: str) -> None:
        self.add(r, item, key, 0, usage_based=True, note=note)

    # ------------------------------------------------------------------------------------------- DigitalOcean
    def do_app(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        for kind in ("services", "workers"):
            for component in spec.get(kind) or []:
                slug = str(component.get("instanceSizeSlug") or "apps-s-1vcpu-0.5gb")
                count = float(component.get("instanceCount") or 1)
                self.add(
                    r,
                    f"App Platform {kind[:-1]} {component.get('name')} {slug} x {count:g}",
                    f"do.app.{slug}",
                    count,
                    region="*",
                )
        for component in spec.get("jobs") or []:
            slug = str(component.get("instanceSizeSlug") or "apps-s-1vcpu-0.5gb")
            self.add(
                r,
                f"App Platform job {component.get('name')}",
                f"do.app.{slug}",
                0,
                usage_based=True,
                note="billed per second while the job runs",
                region="*",
            )
        sites = spec.get("staticSites") or []
        if sites:
            self.add(r, f"App Platform static sites ({len(sites)})", "do.static_site", len(sites), region="*")

    def do_database(self, r: Resource) -> None:
        size = str(r.inputs.get("size"))
        nodes = float(r.inputs.get("nodeCount") or 1)
        label = "primary" if nodes == 1 else f"primary + {nodes - 1:g} standby"
        self.add(r, f"Managed {r.inputs.get('engine', 'pg')} {size} ({label})", f"do.db.{size}", nodes, region="*")


RDS = "aws:rds/instance:Instance"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ECS_SERVICE = "aws:ecs/service:Service"


def _tasks_by_capacity(service: Mapping[str, Any], tasks: float) -> list[tuple[str, float]]:
    """Tasks per capacity provider: a launch type puts them all on FARGATE; a strategy places each provider's
    `base` first, then the rest by `weight` (docs.aws.amazon.com/AmazonECS/latest/developerguide/
    cluster-capacity-providers.html)."""
    strategy = [s for s in service.get("capacityProviderStrategies") or [] if isinstance(s, Mapping)]
    if not strategy:
        return [("FARGATE", tasks)]
    placed = {str(s["capacityProvider"]): min(float(s.get("base") or 0), tasks) for s in strategy}
    rest = max(tasks - sum(placed.values()), 0.0)
    weights = {str(s["capacityProvider"]): float(s.get("weight") or 0) for s in strategy}
    total_weight = sum(weights.values()) or 1.0
    for provider, weight in weights.items():
        placed[provider] += rest * weight / total_weight
    return [(provider, count) for provider, count in placed.items() if count > 0] or [("FARGATE", 0.0)]


_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")


def _runs_per_month(expression: Any) -> float:
    """Runs a month of an EventBridge `rate(...)`/`cron(...)` expression (cron: hourly or daily by its fields)."""
    text = str(expression or "")
    rate = _RATE.fullmatch(text)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2)
        per_day = {"minute": 1440.0, "hour": 24.0, "day": 1.0}[unit.rstrip("s")] / amount
        return round(per_day * 30.4, 1)
    if text.startswith("cron("):
        minute, hour = [*text[5:-1].split(), "*", "*"][:2]
        if hour.isdigit() and minute.isdigit():
            return 30.4
        if minute.isdigit():
            return 730.0
        return 730.0 * 60
    return 0.0


_HANDLERS: dict[str, str] = {
    RDS: "rds_instance",
    ECS_SERVICE: "ecs_service",
    "aws:apigatewayv2/api:Api": "http_api",
    "aws:servicediscovery/service:Service": "discovery_service",
    "aws:lb/loadBalancer:LoadBalancer": "load_balancer",
    "aws:alb/loadBalancer:LoadBalancer": "load_balancer",
    "aws:ec2/natGateway:NatGateway": "nat_gateway",
    "aws:ec2/eip:Eip": "eip",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpc_endpoint",
    "aws:wafv2/webAcl:WebAcl": "web_acl",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": "waf_logging",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "metric_alarm",
    "aws:elasticache/replicationGroup:ReplicationGroup": "cache_nodes",
    "aws:elasticache/cluster:Cluster": "cache_nodes",
    "aws:backup/plan:Plan": "backup_plan",
    "aws:lambda/function:Function": "lambda_function",
    "aws:lambda/eventSourceMapping:EventSourceMapping": "sqs_event_source",
    "digitalocean:index/app:App": "do_app",
    "digitalocean:index/databaseCluster:DatabaseCluster": "do_database",
}

_FLAT: dict[str, tuple[str, str]] = {
    "aws:secretsmanager/secret:Secret": ("Secrets Manager secret", "secretsmanager.secret"),
    "aws:kms/key:Key": ("KMS customer managed key", "kms.key"),
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": ("CloudWatch composite alarm", "cloudwatch.alarm.composite"),
    "aws:cloudwatch/dashboard:Dashboard": ("CloudWatch dashboard", "cloudwatch.dashboard"),
    "aws:route53/healthCheck:HealthCheck": ("Route 53 health check", "route53.health_check"),
    "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace": (
        "Cloud Map private DNS namespace (a Route 53 private hosted zone)",
        "route53.hosted_zone",
    ),
}

_USAGE: dict[str, tuple[str, str, str]] = {
    "aws:cloudfront/distribution:Distribution": (
        "CloudFront data transfer and requests",
        "cloudfront.gb_out",
        "1 TB and 10M requests a month are free; then per GB to viewers",
    ),
    "aws:cloudwatch/logGroup:LogGroup": ("CloudWatch Logs", "cloudwatch.logs.ingest", "per GB ingested (+ storage)"),
    "aws:ec2/flowLog:FlowLog": ("VPC flow logs", "cloudwatch.logs.ingest", "vended logs, per GB ingested"),
    "aws:s3/bucket:Bucket": ("S3 storage", "s3.standard", "per GB-month stored, plus requests"),
    "aws:ecr/repository:Repository": ("ECR image storage", "ecr.storage", "per GB-month of images kept"),
    "aws:sqs/queue:Queue": ("SQS requests", "sqs.requests", "first million requests a month free"),
    "aws:sns/topic:Topic": ("SNS publishes", "sns.requests", "first million publishes free; SMS and e-mail extra"),
    "aws:dynamodb/table:Table": ("DynamoDB on-demand requests", "dynamodb.write", "per million request units"),
}


def _flat_or_usage(estimator: _Estimator, resource: Resource) -> None:
    if resource.type in _FLAT:
        item, key = _FLAT[resource.type]
        estimator.add(resource, item, key, 1)
    elif resource.type in _USAGE:
        item, key, note = _USAGE[resource.type]
        estimator.usage_only(resource, item, key, note)
    elif resource.type == "digitalocean:index/spacesBucket:SpacesBucket" and not any(
        i.type == resource.type for i in estimator.items
    ):
        estimator.add(resource, "Spaces subscription (covers every bucket)", "do.spaces", 1, region="*")
    elif resource.type == "digitalocean:index/containerRegistry:ContainerRegistry":
        tier = str(resource.inputs.get("subscriptionTierSlug") or "basic")
        estimator.add(resource, f"Container registry ({tier})", f"do.registry.{tier}", 1, region="*")


def estimate(run: StackRun, prices: PriceTable | None = None) -> list[Item]:
    estimator = _Estimator(run, prices or load_prices())
    for resource in run.resources:
        if not resource.custom:
            continue
        handler = _HANDLERS.get(resource.type)
        if handler is not None:
            getattr(estimator, handler)(resource)
        else:
            _flat_or_usage(estimator, resource)
    return estimator.items


# ---------------------------------------------------------------------------------------------------------
# Plan section
# ---------------------------------------------------------------------------------------------------------


def build_section(run: StackRun) -> dict[str, Any]:
    prices = load_prices()
    items = estimate(run, prices)
    unpriced = sorted({f"{i.name}: {i.item} ({i.note})" for i in items if i.unpriced})
    if unpriced:
        # A total without these would look cheaper than the bill: refuse it (the config checks sizes against the
        # table first, so this is a size or service the table lacks). Exit 2 from the plan, like invalid config.
        raise ConfigError(
            [f"{run.config_file}: cost: no list price, the estimate would under-report: {line}" for line in unpriced]
        )
    total = round(sum(i.monthly_usd for i in items), 2)
    tier = run.config.get("shipyard:tier", "")
    section: dict[str, Any] = {
        "monthly_usd_total": total,
        "as_of": prices.as_of,
        "currency": prices.currency,
        "items": [asdict(i) for i in sorted(items, key=lambda i: (-i.monthly_usd, i.name, i.item))],
    }
    budget = stack_budget(run.config)
    if budget is not None:
        limit, source = budget
        section["goal"] = {"tier": tier, "monthly_usd_max": limit, "met": total <= limit, "source": source}
    return section


def stack_budget(config: Mapping[str, str]) -> tuple[float, str] | None:
    """(USD a month, where the figure comes from): the stack file's `shipyard:budget`, else the tier's goal.

    The program validated the key before the plan got here (infra/config/common.py BudgetConfig), so it parses."""
    raw = config.get("shipyard:budget")
    if raw:
        budget = json.loads(raw) if isinstance(raw, str) else raw
        return float(budget["monthlyUsd"]), str(budget.get("source") or "stack file")
    tier = config.get("shipyard:tier", "")
    if tier in GOALS_USD:
        return GOALS_USD[tier], f"tier default for {tier}"
    return None


def _money(value: float) -> str:
    return f"{value:8.2f}"


def _source(goal: Mapping[str, Any]) -> str:
    # Sections written before budgets (a --diff base) carry no source: the tier's goal was the only one.
    return str(goal.get("source") or f"tier default for {goal['tier']}")


def goal_line(section: dict[str, Any]) -> str:
    goal = section.get("goal")
    if not goal:
        return "no budget for this stack (set shipyard:budget)"
    verdict = (
        "met" if goal["met"] else f"NOT met (over by {section['monthly_usd_total'] - goal['monthly_usd_max']:.2f})"
    )
    return f"budget: <= {goal['monthly_usd_max']:g} USD/month ({_source(goal)}) — {verdict}"


def render_section(section: dict[str, Any]) -> list[str]:
    lines = [
        f"{section['monthly_usd_total']:.2f} {section['currency']}/month (list prices as of {section['as_of']}; "
        "usage-based items at their stated baseline)",
        goal_line(section),
    ]
    usage_zero: dict[tuple[str, str], int] = defaultdict(int)
    for item in section["items"]:
        if item["monthly_usd"] == 0 and item["usage_based"]:
            usage_zero[(item["item"], f"{item['unit_price']:g} per {item['unit']}")] += 1
            continue
        flags = " [usage-based]" if item["usage_based"] else ""
        flags += " [UNPRICED]" if item["unpriced"] else ""
        note = f"  ({item['note']})" if item["note"] else ""
        lines.append(f"  {_money(item['monthly_usd'])}  {item['name']}: {item['item']}{flags}{note}")
    for (item, price), count in sorted(usage_zero.items()):
        lines.append(f"      usage  {count} x {item}: {price}")
    return lines


def _item_key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["urn"], item["item"])


def diff_section(base: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    before_total = float((base or {}).get("monthly_usd_total", 0.0))
    delta = current["monthly_usd_total"] - before_total
    lines = [
        f"monthly estimate {before_total:.2f} -> {current['monthly_usd_total']:.2f} USD ({delta:+.2f}); "
        + goal_line(current)
    ]
    before = {_item_key(i): i for i in (base or {}).get("items", [])}
    after = {_item_key(i): i for i in current["items"]}
    for key in sorted(set(before) | set(after)):
        old = before.get(key, {}).get("monthly_usd", 0.0)
        new = after.get(key, {}).get("monthly_usd", 0.0)
        if round(new - old, 2) != 0:
            name = (after.get(key) or before[key])["name"]
            lines.append(f"  {new - old:+8.2f}  {name}: {key[1]}")
    return lines


def _goal_markdown(section: dict[str, Any]) -> str:
    goal = section.get("goal")
    if not goal:
        return ""
    verdict = "met ✅" if goal["met"] else "**not met** ❌"
    return f", budget ≤ {goal['monthly_usd_max']:g} ({_source(goal)}): {verdict}"


def summary_markdown(section: dict[str, Any]) -> str:
    return f"cost **{section['monthly_usd_total']:.2f} {section['currency']}/month**{_goal_markdown(section)}"


def section_markdown(section: dict[str, Any]) -> list[str]:
    lines = [
        f"List prices as of {section['as_of']} (`infra/prices.json`); usage-based items at their stated baseline.",
        "",
        "| USD/month | resource | item | note |",
        "| ---: | --- | --- | --- |",
    ]
    for item in section["items"]:
        flag = " (usage-based)" if item["usage_based"] else ""
        flag += " **unpriced**" if item["unpriced"] else ""
        note = str(item["note"]).replace("|", "\\|")
        lines.append(f"| {item['monthly_usd']:.2f} | `{item['name']}` | {item['item']}{flag} | {note} |")
    lines.append(f"| **{section['monthly_usd_total']:.2f}** | | **total** | |")
    return lines


def diff_summary_markdown(base: dict[str, Any] | None, current: dict[str, Any]) -> str:
    before = float((base or {}).get("monthly_usd_total", 0.0))
    after = current["monthly_usd_total"]
    return f"cost **{before:.2f} → {after:.2f} USD/month ({after - before:+.2f})**{_goal_markdown(current)}"


def summarize_items(items: list[Item]) -> Iterator[tuple[str, float]]:
    """(type, monthly USD) totals per resource type, largest first (for the markdown summary)."""
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        totals[item.type] += item.monthly_usd
    yield from sorted(totals.items(), key=lambda kv: -kv[1])


register_report(
    PlanReport(
        key="cost",
        title="Monthly cost estimate",
        build=build_section,
        render=render_section,
        diff=diff_section,
        summary=summary_markdown,
        markdown=section_markdown,
        diff_summary=diff_summary_markdown,
    )
)
