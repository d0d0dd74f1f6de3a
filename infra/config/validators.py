"""Shared pieces of the stack model: the project namespace, the base model and the validated value types."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
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
    )


# --------------------------------------------------------------------------------------------------------
# Reusable validated types
# --------------------------------------------------------------------------------------------------------

_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON_RE = re.compile(r"^cron\((.+)\)$")
_CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*?,/\-#L W]+$")


def validate_schedule(value: str) -> str:
    """Accepts EventBridge Scheduler / AWS Backup expressions: `rate(N unit)` or `cron(6 fields)`.

    The cron dialect is AWS's, not Unix's: six fields (minutes hours day-of-month month day-of-week year)
    and exactly one of day-of-month / day-of-week must be `?`. Catching that here beats a failed
    `pulumi up` half-way through a deployment.
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
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValueError(f"AWS cron takes 6 fields (min hour day-of-month month day-of-week year), got {len(fields)}")
    for index, field in enumerate(fields):
        if not _CRON_FIELD_RE.match(field):
            raise ValueError(f"cron field {index + 1} ({field!r}) has characters AWS cron does not accept")
    minute, hour, dom, _month, dow, _year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError("exactly one of day-of-month (field 3) and day-of-week (field 5) must be '?'")
    for name, text, high in (("minute", minute, 59), ("hour", hour, 23)):
        for number in re.findall(r"\d+", text):
            if int(number) > high:
                raise ValueError(f"{name} value {number} is out of range 0-{high}")
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


Schedule = Annotated[str, AfterValidator(validate_schedule)]
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
