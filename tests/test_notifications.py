"""One notification per incident per school, naming only that school's children."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime

import pytest

from gateway.clock import LONDON
from gateway.model import (
    ChildRecord,
    CrimeStatus,
    Decision,
    ExceptionKind,
    Incident,
    Outcome,
    Risk,
    SourceRow,
)
from gateway.notifications import plan_notifications, reference_code

PRIMARY = 110001
SECONDARY = 110003
MONDAY_0900 = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)

AVA = ChildRecord("Ava", "Example", date(2016, 3, 4), SourceRow("day.xlsx", "Incidents", 5))
BEN = replace(
    AVA, forename="Ben", dob=date(2018, 7, 1), source=SourceRow("day.xlsx", "Incidents", 6)
)
CARA = replace(
    AVA, forename="Cara", dob=date(2011, 1, 9), source=SourceRow("day.xlsx", "Incidents", 7)
)


def incident(*children: ChildRecord, ref: str = "CC-20260228-0042") -> Incident:
    return Incident(
        ref,
        datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
        Risk.MEDIUM,
        CrimeStatus.CRIME,
        children,
        circumstances="Verbal argument",
    )


def notify(of: Incident, child: ChildRecord, urn: int, *, due: datetime = MONDAY_0900) -> Decision:
    return Decision(
        of.ref,
        child,
        Outcome.NOTIFY,
        "Notify the school",
        urn=urn,
        school_name=f"School {urn}",
        due=due,
    )


def test_siblings_at_one_school_share_one_notification() -> None:
    household = incident(AVA, BEN)

    [notification] = plan_notifications(
        [household], [notify(household, AVA, PRIMARY), notify(household, BEN, PRIMARY)]
    )

    assert notification.children == (AVA, BEN)
    assert notification.urn == PRIMARY
    assert notification.school_name == f"School {PRIMARY}"
    assert notification.due == MONDAY_0900
    assert notification.reference == reference_code(household.ref, PRIMARY)


def test_siblings_at_two_schools_each_school_names_only_its_own_child() -> None:
    household = incident(AVA, CARA)

    notifications = plan_notifications(
        [household], [notify(household, AVA, PRIMARY), notify(household, CARA, SECONDARY)]
    )

    by_school = {n.urn: n for n in notifications}
    assert set(by_school) == {PRIMARY, SECONDARY}
    assert by_school[PRIMARY].children == (AVA,)
    assert by_school[SECONDARY].children == (CARA,)


def test_the_incident_travels_without_its_list_of_children() -> None:
    household = incident(AVA, CARA)

    notifications = plan_notifications(
        [household], [notify(household, AVA, PRIMARY), notify(household, CARA, SECONDARY)]
    )

    for notification in notifications:
        assert notification.incident == replace(household, children=())


def test_children_are_named_in_the_polices_order() -> None:
    household = incident(AVA, BEN)

    [notification] = plan_notifications(
        [household], [notify(household, BEN, PRIMARY), notify(household, AVA, PRIMARY)]
    )

    assert notification.children == (AVA, BEN)


def test_only_notify_decisions_become_notifications() -> None:
    household = incident(AVA, BEN, CARA)
    decisions = [
        notify(household, AVA, PRIMARY),
        replace(notify(household, BEN, 110002), outcome=Outcome.TELEPHONE, due=None),
        replace(
            notify(household, CARA, SECONDARY),
            outcome=Outcome.EXCEPTION,
            exception_kind=ExceptionKind.AMBIGUOUS,
            due=None,
        ),
    ]

    [notification] = plan_notifications([household], decisions)

    assert notification.children == (AVA,)


def test_a_withheld_sibling_is_not_named_to_the_school_of_the_other() -> None:
    household = incident(AVA, BEN)
    decisions = [
        notify(household, AVA, PRIMARY),
        replace(notify(household, BEN, PRIMARY), outcome=Outcome.WITHHOLD, due=None),
    ]

    [notification] = plan_notifications([household], decisions)

    assert notification.children == (AVA,)


def test_two_incidents_at_one_school_are_two_notifications() -> None:
    first = incident(AVA, ref="CC-1")
    second = incident(BEN, ref="CC-2")

    notifications = plan_notifications(
        [first, second], [notify(first, AVA, PRIMARY), notify(second, BEN, PRIMARY)]
    )

    assert [n.children for n in notifications] == [(AVA,), (BEN,)]
    assert notifications[0].reference != notifications[1].reference


def test_notification_is_due_at_the_earliest_due_of_its_children() -> None:
    household = incident(AVA, BEN)
    later = datetime(2026, 3, 3, 9, 0, tzinfo=LONDON)

    [notification] = plan_notifications(
        [household],
        [notify(household, AVA, PRIMARY, due=later), notify(household, BEN, PRIMARY)],
    )

    assert notification.due == MONDAY_0900


def test_no_notify_decisions_mean_no_notifications() -> None:
    assert plan_notifications([incident(AVA)], []) == []


def test_a_notify_decision_for_a_child_not_in_its_incident_is_refused() -> None:
    household = incident(AVA)

    with pytest.raises(ValueError, match="row 6"):
        plan_notifications([household], [notify(household, BEN, PRIMARY)])


def test_a_notify_decision_without_a_due_time_is_refused() -> None:
    household = incident(AVA)

    with pytest.raises(ValueError, match="CC-20260228-0042"):
        plan_notifications([household], [replace(notify(household, AVA, PRIMARY), due=None)])


def test_a_notify_decision_on_an_incident_without_a_police_reference_is_refused() -> None:
    orphan = incident(AVA, ref="")

    with pytest.raises(ValueError, match="without a police reference"):
        plan_notifications([orphan], [notify(orphan, AVA, PRIMARY)])


def test_one_reference_given_to_two_incidents_at_one_school_is_refused() -> None:
    first = incident(AVA)
    again = incident(BEN)

    with pytest.raises(ValueError, match="appears twice"):
        plan_notifications(
            [first, again], [notify(first, AVA, PRIMARY), notify(again, BEN, PRIMARY)]
        )


# --------------------------------------------------------------------------------------
# Reference codes


def test_reference_code_is_the_same_on_every_run() -> None:
    # Fixed here so that a change of the derivation (which would orphan every stored
    # notification's reference) cannot pass unnoticed.
    assert reference_code("CC-20260228-0042", 110001) == "OE-JCNDD-3SSK6"


def test_reference_code_is_short_and_easy_to_read_aloud() -> None:
    code = reference_code("CC-20260228-0042", 110001)

    assert re.fullmatch(r"OE-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", code)


def test_reference_codes_differ_across_incidents_and_schools() -> None:
    refs = [f"CC-20260228-{n:04d}" for n in range(200)]
    urns = [100000 + n for n in range(20)]

    codes = {reference_code(ref, urn) for ref in refs for urn in urns}

    assert len(codes) == len(refs) * len(urns)


def test_reference_code_does_not_confuse_where_the_reference_ends() -> None:
    assert reference_code("CC-1", 23) != reference_code("CC-12", 3)
