"""The scheduled side's table: every kind has a row, every row's texts exist, and the sweep only walks it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from content.catalog import catalogue
from content.policy import load_policy
from handlers.alerts import ALERTS, missed
from handlers.schedule import MONTHLY, OBLIGATIONS, default_schedule
from scheduler import sweep
from storage.models import EscalationKind, ObligationKind, SQLModel


def test_every_obligation_kind_has_a_row():
    assert set(OBLIGATIONS) == set(ObligationKind)
    assert default_schedule().obligations is OBLIGATIONS


def test_every_escalation_kind_has_a_row_with_a_ladder():
    assert set(ALERTS) == set(EscalationKind)
    policy = load_policy()
    for kind, rule in ALERTS.items():
        assert rule.ladder, kind
        # Every ladder ends with the county's administrators (no dead end), each rung but the last has a limit.
        assert rule.ladder[-1].who == "admins" and rule.ladder[-1].limit is None, kind
        assert all(r.limit is not None for r in rule.ladder[:-1]), kind
        first = "supervisor" if kind is EscalationKind.lost_contact else "officer"  # the officer had the misses
        assert rule.ladder[0].who == first, kind
    assert ALERTS[EscalationKind.missed_checkin].ladder[0].limit(policy) == policy.escalation.officer_sla
    assert ALERTS[EscalationKind.missed_checkin].ladder[1].limit(policy) == policy.escalation.supervisor_sla


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_alert_header_and_what_is_in_the_catalogue(language):
    keys = catalogue(language)
    for kind, rule in ALERTS.items():
        assert f"escalation.header_{rule.header}" in keys, (kind, language)
        assert f"what.{rule.what}" in keys, (kind, language)


def test_the_kinds_that_raise_an_alert_when_missed_have_one():
    for kind in ObligationKind:
        if kind != ObligationKind.study:  # a week's study left undone raises nothing: the month's tally does
            assert missed(kind) in ALERTS
    with pytest.raises(ValueError):
        missed(ObligationKind.study)


def test_monthly_targets_name_a_policy_section_and_an_alert():
    policy = load_policy()
    for kind, rule in MONTHLY.items():
        target = rule.target(policy)
        assert target.monthly_minutes > 0 and target.remind_day < target.escalate_day, kind
        assert rule.alert in ALERTS


def test_the_urgent_kinds_are_the_ones_a_person_caused_or_cannot_help():
    urgent = {k for k, r in ALERTS.items() if r.urgent}
    assert urgent == {EscalationKind.asked_officer, EscalationKind.out_of_area, EscalationKind.unreachable,
                      EscalationKind.sms_opt_out}


def _kind_branches(path: Path) -> list[str]:
    """References to a kind member, or a kind's value as a string literal, in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    values = {m.value for m in ObligationKind} | {m.value for m in EscalationKind}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("ObligationKind", "EscalationKind"):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in values:
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


def test_the_sweep_holds_no_kind_specific_branch():
    assert _kind_branches(Path(sweep.__file__)) == []


def test_the_branch_finder_can_fail(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("if ob.kind == ObligationKind.study or esc.kind == 'out_of_area':\n    pass\n", encoding="utf-8")
    assert _kind_branches(probe) == ["line 1: ObligationKind.study", "line 1: 'out_of_area'"]


def test_kind_columns_are_typed_and_checked_in_the_schema():
    for table, column, enum in (("obligation", "kind", ObligationKind), ("escalation", "kind", EscalationKind)):
        t = SQLModel.metadata.tables[table]
        assert t.c[column].type.enum is enum
        checks = [c for c in t.constraints if c.name == f"ck_{table}_{column}"]
        assert len(checks) == 1 and all(f"'{m.value}'" in str(checks[0].sqltext) for m in enum)
