"""Scoring a plan against the generated truth: wrong routes, dropped children, auto-routes."""

from __future__ import annotations

from datetime import date
from typing import Any

from gateway.synthetic import ChildKind, ExpectedChild
from gateway.synthetic.scoring import score_plan


def child(row: int, kind: ChildKind, urn: int | None, *, routable: bool) -> ExpectedChild:
    return ExpectedChild(
        incident_ref=f"CC-01032026-{row:05d}",
        sheet="Encompass",
        row=row,
        group=None,
        written_name="Ava Smith",
        dob=date(2016, 5, 4),
        kind=kind,
        expected_urn=urn,
        routable=routable,
    )


def decision(row: int, outcome: str, urn: int | None, group: int | None = None) -> dict[str, Any]:
    return {
        "incident_ref": f"CC-01032026-{row:05d}",
        "outcome": outcome,
        "urn": urn,
        "source_row": {"file": "p.xlsx", "sheet": "Encompass", "row": row, "group": group},
    }


def test_a_notify_to_another_school_is_a_wrong_route() -> None:
    score = score_plan(
        [decision(4, "notify", 111111)], [child(4, ChildKind.PUPIL, 122222, routable=True)]
    )
    assert len(score.wrong_routes) == 1
    assert "122222" in score.wrong_routes[0]
    assert score.auto_routed == 0


def test_routing_a_baby_not_on_the_roll_anywhere_is_a_wrong_route() -> None:
    score = score_plan(
        [decision(4, "telephone", 111111)], [child(4, ChildKind.NOT_ON_ROLL, None, routable=False)]
    )
    assert len(score.wrong_routes) == 1


def test_an_exception_is_never_a_wrong_route() -> None:
    score = score_plan(
        [decision(4, "exception", 111111)], [child(4, ChildKind.TWIN, 122222, routable=True)]
    )
    assert score.wrong_routes == ()
    assert score.outcomes == {"twin": {"exception": 1}}


def test_a_child_without_a_decision_is_reported() -> None:
    score = score_plan(
        [decision(4, "notify", 122222)],
        [
            child(4, ChildKind.PUPIL, 122222, routable=True),
            child(5, ChildKind.PUPIL, 133333, routable=True),
        ],
    )
    assert len(score.missing) == 1 and "row 5" in score.missing[0]


def test_auto_route_rate_is_routable_children_sent_to_their_own_school() -> None:
    expected = [
        child(4, ChildKind.PUPIL, 122222, routable=True),
        child(5, ChildKind.PUPIL, 133333, routable=True),
        child(6, ChildKind.OUT_OF_AREA, 144444, routable=False),
    ]
    plan = [
        decision(4, "notify", 122222),
        decision(5, "exception", None),
        decision(6, "withhold", 144444),
    ]
    score = score_plan(plan, expected)
    assert (score.auto_routed, score.routable) == (1, 2)
    assert score.auto_route_rate == 0.5
    assert score.wrong_routes == () and score.routed_against_policy == ()


def test_notifying_an_out_of_area_school_is_against_policy_not_a_wrong_school() -> None:
    score = score_plan(
        [decision(6, "notify", 144444)], [child(6, ChildKind.OUT_OF_AREA, 144444, routable=False)]
    )
    assert score.wrong_routes == ()
    assert len(score.routed_against_policy) == 1


def test_children_of_one_row_are_told_apart_by_their_group() -> None:
    first = ExpectedChild(
        "CC-1", "Encompass", 4, 1, "A B", date(2016, 1, 1), ChildKind.PUPIL, 122222, True
    )
    second = ExpectedChild(
        "CC-1", "Encompass", 4, 2, "C B", date(2018, 1, 1), ChildKind.PUPIL, 133333, True
    )
    plan = [decision(4, "notify", 133333, group=2), decision(4, "notify", 122222, group=1)]
    score = score_plan(plan, [first, second])
    assert score.wrong_routes == ()
    assert score.auto_routed == 2
