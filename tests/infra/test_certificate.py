"""Certificate helper: which names need their own DNS validation record."""

from __future__ import annotations

from infra.aws.certificate import validation_domains


def test_a_wildcard_shares_its_base_names_record() -> None:
    assert validation_domains("example.com", ["*.example.com"]) == ["example.com"]
    assert validation_domains("*.example.com", []) == ["example.com"]


def test_each_distinct_name_gets_one_record_in_a_stable_order() -> None:
    assert validation_domains("www.example.com", ["app.example.com", "app.example.com"]) == [
        "app.example.com",
        "www.example.com",
    ]
