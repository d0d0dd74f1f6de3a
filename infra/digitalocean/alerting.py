"""Who App Platform alerts and uptime alerts notify, per severity, from `shipyard:alerts`.

DigitalOcean delivers these itself (e-mail and Slack only; config rejects other channels on this cloud), so
there is no forwarder: `routing.critical` receives what needs a person now (deploy failed, domain failed,
restarts, site down) and `routing.warning` what needs a look (CPU, memory, latency, certificate expiry).
The on-call e-mail is always on critical, like on AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.config import DigitalOceanStack, Severity


@dataclass(frozen=True)
class Destinations:
    emails: tuple[str, ...]
    slack_url: str | None
    slack_channel: str

    @property
    def empty(self) -> bool:
        return not self.emails and self.slack_url is None

    def secret_emails(self) -> pulumi.Output[list[str]]:
        # The addresses come from a secret key (alertEmails): keep them secret in state and previews too.
        return pulumi.Output.secret(list(self.emails))

    def secret_slack_url(self) -> pulumi.Output[str] | None:
        return None if self.slack_url is None else pulumi.Output.secret(self.slack_url)


def destinations(config: DigitalOceanStack, severity: Severity) -> Destinations:
    channels = config.alerts.routing.get(severity, [])
    emails: list[str] = []
    if "email" in channels:
        emails += [e.strip() for e in (config.secret("alertEmails") or "").split(",") if e.strip()]
    if severity == "critical" and config.alerts.oncall_email and config.alerts.oncall_email not in emails:
        emails.append(config.alerts.oncall_email)
    slack_url = config.secret("slackWebhookUrl") if "slack" in channels else None
    channel = config.alerts.slack_channel
    return Destinations(tuple(emails), slack_url, channel if channel.startswith("#") else f"#{channel}")
