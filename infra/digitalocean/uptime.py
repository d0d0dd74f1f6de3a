"""Uptime checks from DigitalOcean's probe regions on the frontend and the API (`healthChecks.endpoints`), each with
alerts for down, latency over the endpoint's budget, and TLS certificate expiry.

They probe from outside, as users do — they catch a broken domain or certificate that the app's own health
check cannot see. Down goes to the critical destinations, latency and certificate expiry to warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from infra.component import Component
from infra.config import HealthChecksConfig
from infra.digitalocean.alerting import Destinations
from infra.naming import Naming

PROBE_REGIONS = ["us_east", "us_west", "eu_west", "se_asia"]
"""All four: `down` fires only when probes agree, so more vantage points mean fewer false alarms."""


@dataclass(frozen=True)
class UptimeArgs:
    settings: HealthChecksConfig
    """Endpoints (target + path + latency budget) and certificate warning days (`shipyard:healthChecks`)."""
    frontend_url: pulumi.Input[str]
    api_url: pulumi.Input[str]
    critical: Destinations
    warning: Destinations


def _notifications(target: Destinations) -> digitalocean.UptimeAlertNotificationArgs:
    slack_url = target.secret_slack_url()
    return digitalocean.UptimeAlertNotificationArgs(
        emails=target.secret_emails() if target.emails else None,
        slacks=(
            [digitalocean.UptimeAlertNotificationSlackArgs(channel=target.slack_channel, url=slack_url)]
            if slack_url is not None
            else None
        ),
    )


class Uptime(Component):
    def __init__(self, name: str, args: UptimeArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("digitalocean", "Uptime", name, naming, opts)
        self.checks: dict[str, digitalocean.UptimeCheck] = {}
        if not args.settings.enabled:
            self.register_outputs({})
            return
        bases = {"frontend": args.frontend_url, "api": args.api_url}
        for endpoint in args.settings.endpoints:
            target = pulumi.Output.concat(bases[endpoint.target], endpoint.path)
            check = digitalocean.UptimeCheck(
                self.child_name(endpoint.name),
                name=naming.physical(endpoint.name),
                type="https",
                target=target,
                regions=PROBE_REGIONS,
                enabled=True,
                opts=self.opts(),
            )
            self.checks[endpoint.name] = check
            alerts: list[tuple[str, str, int | None, str | None, Destinations]] = [
                ("down", "2m", None, None, args.critical),
                ("latency", "5m", endpoint.latency_budget_ms, "greater_than", args.warning),
                # The threshold is in days: warn while there is still time to fix renewal by hand.
                ("ssl_expiry", "5m", args.settings.cert_warn_days, "less_than", args.warning),
            ]
            for kind, period, threshold, comparison, destinations in alerts:
                if destinations.empty:
                    continue
                digitalocean.UptimeAlert(
                    self.child_name(endpoint.name, kind.replace("_", "-")),
                    name=naming.physical(endpoint.name, kind.replace("_", "-")),
                    check_id=check.id,
                    type=kind,
                    period=period,
                    threshold=threshold,
                    comparison=comparison,
                    notifications=[_notifications(destinations)],
                    opts=self.opts(),
                )
        self.register_outputs({"checks": {name: check.id for name, check in self.checks.items()}})
