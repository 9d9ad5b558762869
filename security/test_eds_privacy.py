"""Pseudonymisation and access rules of a health data warehouse (CNIL référentiel, 2021)."""
from vigie.checks import check, not_applicable
from vigie.warehouse import privacy


def _report(findings, outcome, what):
    findings.conclude(outcome, what)


@check("privacy.identifiers")
def test_no_direct_identifiers(requirement, warehouse, outcome):
    _report(privacy.identifiers(warehouse.measures, requirement.params), outcome, "text columns")


@check("privacy.k-anonymity")
def test_k_anonymity(requirement, warehouse, outcome):
    _report(privacy.cells(warehouse.measures, requirement.params, "k"), outcome, "cells")


@check("privacy.small-cells")
def test_small_cells(requirement, warehouse, outcome):
    _report(privacy.cells(warehouse.measures, requirement.params, "threshold"), outcome, "cells")


@check("privacy.audit-log")
def test_audit_log_records_the_harness(requirement, warehouse, outcome):
    _report(privacy.audit_records(warehouse.measures, requirement.params), outcome, "audit records")


def _role_rule(rule, requirement, warehouse, outcome, what):
    try:
        findings = rule(warehouse.measures, requirement.params)
    except privacy.NotApplicableRule as exc:
        not_applicable(str(exc))
    _report(findings, outcome, what)


@check("privacy.audit-immutable")
def test_audit_log_immutable(requirement, warehouse, outcome):
    _role_rule(privacy.audit_immutable, requirement, warehouse, outcome, "audit log rights")


@check("privacy.least-privilege")
def test_least_privilege(requirement, warehouse, outcome):
    _role_rule(privacy.least_privilege, requirement, warehouse, outcome, "privileges")


@check("privacy.extra-columns")
def test_no_identity_in_columns_outside_the_cdm(requirement, warehouse, outcome):
    _report(privacy.extra_columns(warehouse.measures, requirement.params), outcome, "columns")
