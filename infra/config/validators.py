"""Shared pieces of the stack model: the project namespace, the base model and the validated value types."""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import json
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)
from pydantic.alias_generators import to_camel

PROJECT = "shipyard"
"""The Pulumi project name (Pulumi.yaml) and so the config namespace: keys are `shipyard:<key>`."""

Tier = Literal["staging", "prod"]


class _Model(BaseModel):
    """Base for every config section: camelCase keys, unknown keys rejected, values immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=True,
        # .nan/.inf from YAML are never a setting: refuse them with the key instead of failing later.
        allow_inf_nan=False,
    )


# --------------------------------------------------------------------------------------------------------
# Reusable validated types
# --------------------------------------------------------------------------------------------------------

_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON_RE = re.compile(r"^cron\((.+)\)$")

# AWS's cron grammar (EventBridge / EventBridge Scheduler / AWS Backup share it), per field: the numeric range,
# the names accepted in place of numbers, and the wildcards beyond `, - * /`.
# Source: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html (the Scheduler guide,
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based, shows the same table).
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    special: str = ""
    """Wildcards beyond `, - * /`: `?`, `L`, `W`, `#`."""

    @property
    def allowed(self) -> str:
        words = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        extra = "".join(f" {c}" for c in self.special)
        return f"{self.low}-{self.high}{words}, wildcards , - * /{extra}"


_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31, special="?LW"),
    _CronField("month", 1, 12, _MONTHS),
    _CronField("day-of-week", 1, 7, _WEEKDAYS, special="?L#"),
    _CronField("year", 1970, 2199),
)


def _cron_value(field: _CronField, text: str) -> int:
    if field.names and text.upper() in field.names:
        return field.names.index(text.upper()) + 1
    if not text.isdigit() or not field.low <= int(text) <= field.high:
        raise ValueError(f"{field.name} value {text} is out of range (allowed: {field.allowed})")
    return int(text)


def _cron_item(field: _CronField, item: str) -> None:
    """One comma-separated item: `*`, `v`, `a-b`, `x/step` or a field's own form (`L`, `3W`, `LW`, `6L`, `3#2`)."""
    if "?" in field.special and item == "?":
        return
    if "L" in field.special and item == "L":
        return
    if field.name == "day-of-month" and (item == "LW" or (item.endswith("W") and item[:-1].isdigit())):
        if item != "LW":
            _cron_value(field, item[:-1])
        return
    if field.name == "day-of-week" and item.endswith("L") and len(item) > 1:
        _cron_value(field, item[:-1])
        return
    if field.name == "day-of-week" and "#" in item:
        day, _, nth = item.partition("#")
        _cron_value(field, day)
        if not (nth.isdigit() and 1 <= int(nth) <= 5):
            raise ValueError(f"day-of-week {item!r}: the number after # is the week of the month, 1-5")
        return
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        raise ValueError(f"{field.name} {item!r}: the increment after / must be a whole number >= 1")
    if base == "*":
        return
    first, dash, last = base.partition("-")
    low = _cron_value(field, first)
    if dash and _cron_value(field, last) < low and not field.names:
        raise ValueError(f"{field.name} range {base!r} runs backwards")


def validate_cron_fields(fields: list[str]) -> None:
    """AWS cron: six fields, each from its own grammar, and day-of-month or day-of-week (not both) is `?`."""
    if len(fields) != 6:
        raise ValueError(f"AWS cron takes 6 fields (min hour day-of-month month day-of-week year), got {len(fields)}")
    for field, text in zip(_CRON_FIELDS, fields, strict=True):
        items = text.split(",")
        if field.name == "day-of-week" and "#" in text and len(items) > 1:
            raise ValueError(f"day-of-week {text!r}: with # the field takes one expression only (AWS cron)")
        for item in items:
            if not item:
                raise ValueError(f"{field.name} {text!r} has an empty item between commas")
            if item in {"?", "L"} and item not in field.special:
                raise ValueError(f"{field.name} does not take {item!r} (allowed: {field.allowed})")
            _cron_item(field, item)
        if "?" in text and text != "?":
            raise ValueError(f"{field.name} {text!r}: '?' stands alone in its field")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError("exactly one of day-of-month (field 3) and day-of-week (field 5) must be '?'")


def validate_schedule(value: str) -> str:
    """Accepts EventBridge Scheduler / AWS Backup expressions: `rate(N unit)` or `cron(6 fields)`.

    The cron dialect is AWS's, not Unix's: six fields (minutes hours day-of-month month day-of-week year),
    each with its own range and wildcards (see `_CRON_FIELDS`), and exactly one of day-of-month /
    day-of-week must be `?`. Catching that here beats a failed `pulumi up` half-way through a deployment.
    """
    rate = _RATE_RE.match(value)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2)
        if amount < 1:
            raise ValueError("rate amount must be at least 1")
        if (amount == 1) != (not unit.endswith("s")):
            raise ValueError(f"write 'rate(1 {unit.rstrip('s')})' for one and 'rate(N {unit.rstrip('s')}s)' for more")
        return value
    cron = _CRON_RE.match(value)
    if not cron:
        raise ValueError("must be 'rate(N minutes|hours|days)' or 'cron(min hour day-of-month month day-of-week year)'")
    validate_cron_fields(cron.group(1).split())
    return value


def validate_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'America/Sao_Paulo', 'UTC')") from None
    return value


def validate_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 CIDR block with host bits zero ({exc})") from None
    if not network.is_private:
        raise ValueError("must be a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
    if not 16 <= network.prefixlen <= 22:
        raise ValueError(f"prefix /{network.prefixlen} out of range: use /16 to /22 (room for 9 subnets)")
    return value


def validate_window(value: str) -> str:
    """RDS windows: `hh:mm-hh:mm` (backup) or `ddd:hh:mm-ddd:hh:mm` (maintenance), UTC."""
    if not re.fullmatch(
        r"((mon|tue|wed|thu|fri|sat|sun):)?([01]\d|2[0-3]):[0-5]\d-"
        r"((mon|tue|wed|thu|fri|sat|sun):)?([01]\d|2[0-3]):[0-5]\d",
        value,
    ):
        raise ValueError("must look like '03:00-04:00' or 'sun:05:00-sun:06:00' (UTC)")
    return value


Reason = Annotated[str, Field(min_length=10, description="why; at least a sentence")]
_LOG_RETENTION_ALLOWED = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def validate_log_retention(value: int) -> int:
    if value not in _LOG_RETENTION_ALLOWED:
        raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, _LOG_RETENTION_ALLOWED))} days")
    return value


@cache
def aws_regions() -> dict[str, str]:
    """Region -> partition (`aws`, `aws-cn`, `aws-us-gov`...), from the partition data botocore ships.

    No network and no credentials: the same file the SDKs resolve endpoints from (botocore/data/partitions.json).
    The `*-global` pseudo-regions are not places a stack can live and are left out.
    """
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:  # pragma: no cover - boto3 is in requirements.txt
        raise RuntimeError("botocore is not installed; it ships the AWS region list the config checks against")
    document = json.loads((Path(spec.origin).parent / "data" / "partitions.json").read_text())
    return {
        region: partition["id"]
        for partition in document["partitions"]
        for region in partition["regions"]
        if not region.endswith("-global")
    }


def validate_aws_region(value: str) -> str:
    regions = aws_regions()
    if value not in regions:
        close = difflib.get_close_matches(value, list(regions), n=3, cutoff=0.75)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        commercial = sorted(r for r, partition in regions.items() if partition == "aws")
        raise ValueError(
            f"{value!r} is not an AWS region; {hint}regions (from botocore's partition data): {', '.join(commercial)}"
            " (and the aws-cn, aws-us-gov and isolated partitions' own)"
        )
    return value


AWS_TAG_VALUE_MAX = 256
r"""AWS tag values: 0-256 Unicode characters from letters, digits, white space and `_ . : / = + - @`, pattern
`^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`, and no `aws:` prefix (reserved). Sources: the Tag API reference,
https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_Tag.html, and "Tag naming limits and
requirements", https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html."""
_TAG_SYMBOLS = frozenset("_.:/=+-@")


def _tag_character(char: str) -> bool:
    return unicodedata.category(char)[0] in "LZN" or char in _TAG_SYMBOLS


def validate_tag_value(value: str) -> str:
    """A value that ends up as an AWS tag value (on every resource of the stack)."""
    if len(value) > AWS_TAG_VALUE_MAX:
        raise ValueError(f"becomes an AWS tag value: at most {AWS_TAG_VALUE_MAX} characters, got {len(value)}")
    refused = sorted({char for char in value if not _tag_character(char)})
    if refused:
        shown = ", ".join(f"U+{ord(c):04X}" if not c.isprintable() else repr(c) for c in refused)
        raise ValueError(
            f"becomes an AWS tag value, which allows letters, digits, spaces and _ . : / = + - @ only; not {shown}"
        )
    if value.lower().startswith("aws:"):
        raise ValueError("becomes an AWS tag value; the 'aws:' prefix is reserved for AWS")
    return value


PRICES_FILE = Path(__file__).resolve().parent.parent / "prices.json"


@cache
def priced_keys() -> frozenset[str]:
    """Keys of the dated price table (infra/prices.json) the cost estimate reads."""
    return frozenset(row["key"] for row in json.loads(PRICES_FILE.read_text())["prices"])


def priced_classes(prefix: str) -> list[str]:
    """Instance classes with a list price under `prefix` (e.g. `rds.instance.` -> db.t4g.micro, ...)."""
    return sorted(key.removeprefix(prefix) for key in priced_keys() if key.startswith(prefix))


Schedule = Annotated[str, AfterValidator(validate_schedule)]
AwsRegion = Annotated[str, AfterValidator(validate_aws_region)]
TagValue = Annotated[str, AfterValidator(validate_tag_value)]
TimeZone = Annotated[str, AfterValidator(validate_timezone)]
Cidr = Annotated[str, AfterValidator(validate_cidr)]
RdsWindow = Annotated[str, AfterValidator(validate_window)]
LogRetentionDays = Annotated[int, AfterValidator(validate_log_retention)]


_SECRETISH = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|DSN)", re.IGNORECASE)


def reject_secret_like_env(env: dict[str, str], visible_in: str) -> dict[str, str]:
    """Plain env vars are readable by anyone who can read `visible_in`; secret-looking names are refused."""
    leaked = sorted(k for k in env if _SECRETISH.search(k))
    if leaked:
        raise ValueError(
            f"{', '.join(leaked)} look like secrets; plain env vars are visible in {visible_in} — "
            "set them as secret config instead"
        )
    return env


def rate_seconds(schedule: str) -> int | None:
    """Seconds between runs of a `rate(N unit)` expression; None for a cron expression."""
    match = _RATE_RE.match(schedule)
    if not match:
        return None
    per_unit = {"minute": 60, "hour": 3600, "day": 86_400}
    return int(match.group(1)) * per_unit[match.group(2).rstrip("s")]
