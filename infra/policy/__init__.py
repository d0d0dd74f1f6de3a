"""Guardrails: policy rules mapped to AWS Foundational Security Best Practices (FSBP) and our own conventions.

- `infra.policy.rules`: every rule as data (id, FSBP control, resource types, level per tier, check);
- `infra.policy.pack`: turns the rules into CrossGuard policy objects for one stack (tier, exceptions).

The same policy objects run in two places: the real CrossGuard pack in `policy/` (`pulumi preview
--policy-pack policy/`) and the offline plan (`infra/policy_report.py`), so a rule is written once.
"""
