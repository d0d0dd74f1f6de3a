"""Certificate: an ACM certificate validated over DNS, with the Route 53 records when the zone is ours.

The region is the caller's choice through the provider it passes in `opts` (children inherit it): CloudFront
only accepts certificates from us-east-1, a load balancer only from its own region.

With a hosted zone the component creates the validation CNAMEs and waits for ACM (`CertificateValidation`),
so `arn` only resolves once the certificate is ISSUED and nothing attaches a pending certificate. Without
one, `arn` is the pending certificate and `validation_records` lists the CNAMEs to create at the DNS host;
ACM keeps retrying validation for 72 hours, and a listener or distribution using the ARN fails until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import pulumi
import pulumi_aws as aws

from infra.component import Component
from infra.naming import Naming


@dataclass(frozen=True)
class CertificateArgs:
    domain_name: str
    """Primary name on the certificate, e.g. `app.example.com`."""
    hosted_zone_id: str | None
    """Route 53 zone holding `domain_name`. None: the validation records are only reported (`validation_records`)."""
    subject_alternative_names: list[str] = field(default_factory=list)
    """Extra names (e.g. `*.example.com`). Default none: one name per certificate keeps renewals independent."""


def validation_domains(domain_name: str, subject_alternative_names: list[str]) -> list[str]:
    """Names that need their own validation record, sorted.

    ACM gives `example.com` and `*.example.com` the same CNAME, so a wildcard and its base share one record;
    creating it twice would make the second create fail (or fight over it with allow_overwrite).
    """
    return sorted({name.removeprefix("*.") for name in [domain_name, *subject_alternative_names]})


def _row(rows: list[dict[str, str]], index: int) -> dict[str, str]:
    return rows[index]


def _record_suffix(domain: str) -> str:
    return domain.replace(".", "-")


class Certificate(Component):
    certificate: aws.acm.Certificate
    arn: pulumi.Output[str]
    """Validated ARN when a hosted zone was given (resolves after issuance), else the pending certificate's."""
    validation_records: pulumi.Output[list[dict[str, str]]]
    """`[{"name", "type", "value"}]`, one per distinct name: what to create at the DNS host without a zone."""

    def __init__(self, name: str, args: CertificateArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Certificate", name, naming, opts)
        self.certificate = aws.acm.Certificate(
            self.child_name("cert"),
            domain_name=args.domain_name,
            subject_alternative_names=list(args.subject_alternative_names) or None,
            validation_method="DNS",
            key_algorithm="RSA_2048",  # every client CloudFront and ALBs serve still speaks RSA
            tags={"Name": naming.physical("cert", args.domain_name.replace("*", "wildcard"))},
            opts=self.opts(),
        )
        domains = validation_domains(args.domain_name, args.subject_alternative_names)

        def records(options: list[aws.acm.outputs.CertificateDomainValidationOption]) -> list[dict[str, str]]:
            by_domain = {option.domain_name: option for option in options}
            rows = []
            for domain in domains:
                option = by_domain.get(domain) or by_domain[f"*.{domain}"]
                rows.append(
                    {
                        "name": str(option.resource_record_name),
                        "type": str(option.resource_record_type),
                        "value": str(option.resource_record_value),
                    }
                )
            return rows

        self.validation_records = self.certificate.domain_validation_options.apply(records)

        if args.hosted_zone_id is None:
            self.arn = self.certificate.arn
        else:
            validation_records = []
            for index, domain in enumerate(domains):
                row = self.validation_records.apply(partial(_row, index=index))
                validation_records.append(
                    aws.route53.Record(
                        self.child_name("validation", _record_suffix(domain)),
                        zone_id=args.hosted_zone_id,
                        name=row["name"],
                        type=row["type"],
                        records=[row["value"]],
                        ttl=300,
                        # ACM hands every certificate for the same name in an account the same CNAME (e.g.
                        # a us-east-1 and a regional certificate for one host), so a second owner must be
                        # able to adopt the record instead of failing on "already exists".
                        allow_overwrite=True,
                        opts=self.opts(),
                    )
                )
            validation = aws.acm.CertificateValidation(
                self.child_name("validation"),
                certificate_arn=self.certificate.arn,
                validation_record_fqdns=[record.fqdn for record in validation_records],
                opts=self.opts(),
            )
            self.arn = validation.certificate_arn

        self.register_outputs({"arn": self.arn, "validationRecords": self.validation_records})
