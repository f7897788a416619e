"""How well a plan routed a generated police spreadsheet: the plan's decisions (as the JSON
`process --json` prints) against what each child really is.

A wrong route is a notify or telephone to any school but the child's own: the data breach
the gateway exists to avoid. The auto-route rate is the share of routable children (on the
roll of an open school in the area, under 18) notified or telephoned at their own school
without the Navigator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.synthetic.police import ExpectedChild

_ROUTED = ("notify", "telephone")


@dataclass(frozen=True)
class RoutingScore:
    children: int
    routable: int
    auto_routed: int
    wrong_routes: tuple[str, ...]  # one line per child sent to a school that is not its own
    routed_against_policy: tuple[str, ...]  # its own school, but it should not have been sent
    missing: tuple[str, ...]  # children of the sheet with no decision: silently dropped
    outcomes: Mapping[str, Mapping[str, int]]  # child kind -> outcome -> count

    @property
    def auto_route_rate(self) -> float:
        return self.auto_routed / self.routable if self.routable else 0.0

    def summary(self) -> str:
        lines = [
            f"{self.children} children: {self.auto_routed} of {self.routable} routable "
            f"auto-routed ({self.auto_route_rate:.1%}), {len(self.wrong_routes)} wrong routes, "
            f"{len(self.missing)} without a decision"
        ]
        for kind, outcomes in sorted(self.outcomes.items()):
            shown = ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))
            lines.append(f"  {kind}: {shown}")
        lines.extend(f"  WRONG ROUTE: {line}" for line in self.wrong_routes)
        lines.extend(f"  against policy: {line}" for line in self.routed_against_policy)
        lines.extend(f"  NO DECISION: {line}" for line in self.missing)
        return "\n".join(lines)


def score_plan(
    decisions: Sequence[Mapping[str, Any]], expected: Sequence[ExpectedChild]
) -> RoutingScore:
    """Compare `decisions` (objects of `process --json`) with the generated truth.

    Decisions are tied to children by their source row and Child N group.
    """
    by_place: dict[tuple[int, int | None], Mapping[str, Any]] = {}
    for made in decisions:
        source = made.get("source_row") or {}
        by_place[(int(source.get("row", 0)), source.get("group"))] = made
    wrong: list[str] = []
    against_policy: list[str] = []
    missing: list[str] = []
    outcomes: dict[str, Counter[str]] = {}
    auto_routed = 0
    for child in expected:
        where = f"{child.incident_ref} row {child.row}" + (
            f" child {child.group}" if child.group is not None else ""
        )
        decision = by_place.get((child.row, child.group))
        if decision is None:
            missing.append(f"{where} ({child.kind})")
            continue
        outcome = str(decision.get("outcome"))
        outcomes.setdefault(str(child.kind), Counter())[outcome] += 1
        if outcome not in _ROUTED:
            continue
        urn = decision.get("urn")
        if urn != child.expected_urn:
            wrong.append(
                f"{where} ({child.kind}): {outcome} to {urn}, "
                f"but the child's school is {child.expected_urn or 'none known'}"
            )
        elif child.routable:
            auto_routed += 1
        else:
            against_policy.append(f"{where} ({child.kind}): {outcome} to {urn}")
    return RoutingScore(
        children=len(expected),
        routable=sum(1 for child in expected if child.routable),
        auto_routed=auto_routed,
        wrong_routes=tuple(wrong),
        routed_against_policy=tuple(against_policy),
        missing=tuple(missing),
        outcomes={kind: dict(counts) for kind, counts in outcomes.items()},
    )
