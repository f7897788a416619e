"""The plan for one police spreadsheet: a decision for every child, and how it is shown.

`build_plan` is the pipeline of the domain core — match each child to a school, then apply
the protocol's rules — and nothing else: reading files and recording state happen around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from gateway.clock import LONDON
from gateway.matching import match_child
from gateway.model import (
    CellProblem,
    ChildRecord,
    Decision,
    Directory,
    ExceptionKind,
    Outcome,
    SourceRow,
    SpreadsheetIntake,
)
from gateway.routing import decide
from gateway.ruleset import Rules
from gateway.schoolnames import SchoolNameIndex


@dataclass(frozen=True)
class Plan:
    file: str
    sha256: str
    arrival: datetime
    decisions: tuple[Decision, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for decision in self.decisions if decision.outcome is outcome)


def build_plan(
    intake: SpreadsheetIntake, *, directory: Directory, rules: Rules, arrival: datetime
) -> Plan:
    """Decide the one outcome of every child in `intake`, as if it arrived at `arrival`."""
    schools = SchoolNameIndex(directory.establishments(), rules.school_aliases)
    decisions: list[Decision] = []
    for incident in intake.incidents:
        on = (incident.occurred_at or arrival).astimezone(LONDON).date()
        for child in incident.children:
            # The police often give the household's postcode once, on the incident: it is
            # corroboration for matching (never enough alone), so the child inherits it.
            seen = child if child.postcode else replace(child, postcode=incident.postcode)
            match = match_child(seen, on, directory, schools, rules.nicknames, rules.matching)
            establishment = directory.establishment(match.urn) if match.urn else None
            decisions.append(
                decide(
                    incident,
                    child,
                    match,
                    establishment,
                    calendar=rules.calendar,
                    policy=rules.routing,
                    arrival=arrival,
                )
            )
    decisions.extend(_orphan_row_exceptions(intake.problems))
    return Plan(intake.file, intake.sha256, arrival, tuple(decisions))


def _orphan_row_exceptions(problems: tuple[CellProblem, ...]) -> Iterator[Decision]:
    # A row the reader could not tie to any child still reaches the Navigator as an
    # exception of its own: a spreadsheet row is never silently dropped.
    for problem in problems:
        child = ChildRecord(
            forename="",
            surname="",
            dob=None,
            source=SourceRow(problem.file, problem.sheet, problem.row),
            problems=(problem,),
        )
        yield Decision(
            incident_ref="",
            child=child,
            outcome=Outcome.EXCEPTION,
            exception_kind=ExceptionKind.INVALID_ROW,
            reason=str(problem),
        )


def child_key(decision: Decision) -> str:
    """Identifies a child within one spreadsheet: where it came from."""
    source = decision.child.source
    group = "" if source.group is None else f"#{source.group}"
    return f"{source.sheet}!{source.row}{group}"


def decision_json(decision: Decision) -> dict[str, Any]:
    child = decision.child
    return {
        "incident_ref": decision.incident_ref,
        "child": child.display_name,
        "dob": _iso_date(child.dob),
        "incident_at": decision.incident_at.isoformat() if decision.incident_at else None,
        "incident_time_known": decision.incident_time_known,
        "outcome": decision.outcome.value,
        "urn": decision.urn,
        "school": decision.school_name,
        "due": decision.due.isoformat() if decision.due else None,
        "reason": decision.reason,
        "exception_kind": decision.exception_kind.value if decision.exception_kind else None,
        "manager_alert": decision.manager_alert,
        "telephone": decision.telephone,
        "candidates": [
            {
                "urn": c.urn,
                "school": c.school_name,
                "upn": c.upn,
                "score": round(c.score, 1),
                "agreed": list(c.agreed),
                "note": c.note,
            }
            for c in decision.candidates
        ],
        "source_row": {
            "file": child.source.file,
            "sheet": child.source.sheet,
            "row": child.source.row,
            "group": child.source.group,
        },
    }


def _iso_date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def render_table(plan: Plan) -> str:
    """The plan as the Navigator reads it in a terminal: one line per child, then totals."""
    header = ("incident", "child", "outcome", "school", "due", "reason")
    rows = [header]
    for decision in plan.decisions:
        outcome = decision.outcome.value
        if decision.exception_kind:
            outcome = f"exception: {decision.exception_kind.value}"
        if decision.manager_alert:
            outcome += " + manager alert"
        school = f"{decision.school_name} ({decision.urn})" if decision.urn else ""
        rows.append(
            (
                decision.incident_ref or "-",
                decision.child.display_name or "-",
                outcome,
                school,
                _local(decision.due),
                decision.reason,
            )
        )
    widths = [min(max(len(row[i]) for row in rows), 40) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    totals = ", ".join(f"{plan.count(outcome)} {outcome.value}" for outcome in Outcome)
    lines.append("")
    lines.append(f"{plan.file}: {len(plan.decisions)} children: {totals}")
    return "\n".join(lines)


def _local(instant: datetime | None) -> str:
    return instant.astimezone(LONDON).strftime("%a %d %b %Y %H:%M") if instant else ""
