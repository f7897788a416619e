"""From routing decisions to notifications: one per incident per school.

A school is told only about its own children (data minimisation, DESIGN.md section 5.2):
siblings from the same incident who attend another school go in that school's notification,
never in this one. Telephone tasks are not notifications; they go to the Navigator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from gateway.model import ChildRecord, Decision, Incident, Notification, Outcome

# Crockford's base32 (no I, L, O or U): nothing to confuse when a DSL reads the code aloud
# to the Navigator on the telephone.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NAMESPACE = "encompass-gateway/notification/v1"


def reference_code(incident_ref: str, urn: int) -> str:
    """The notification's reference, e.g. "OE-7K3MQ-9TXAB": the only identifier that appears
    outside the encryption (subject, headers, logs, the Navigator's telephone calls).

    Deterministic, so a re-run or a resent spreadsheet finds the same notification, and
    derived from the police reference and the school's URN only, never from a name. The input
    is JSON-encoded so no two (reference, URN) pairs share a hash input. Ten symbols (50 bits,
    read aloud in two groups of five) make a collision among a million notifications about 1
    in 2,000, and among a decade of this area's (under 100,000) about 1 in 200,000; the state
    database keys notifications by this code, so a collision would stop the second one
    loudly rather than merge two schools' notifications.
    """
    material = json.dumps([_NAMESPACE, incident_ref, urn], ensure_ascii=True)
    number = int.from_bytes(hashlib.sha256(material.encode("ascii")).digest()[:7], "big") >> 6
    symbols = "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(45, -1, -5))
    return f"OE-{symbols[:5]}-{symbols[5:]}"


def plan_notifications(
    incidents: Sequence[Incident], decisions: Sequence[Decision]
) -> list[Notification]:
    """One notification per (incident, school) for the decisions whose outcome is notify,
    naming only that school's children from that incident, in the police's order.

    A decision belongs to the incident with its `incident_ref` whose children include its
    `child`. The notification is due at the earliest due time of its children: they share a
    school and an incident, so routing gives them the same one, and if it ever did not, the
    earliest keeps the protocol's "before 09:00" for every child named.

    Raises ValueError when a notify decision cannot be tied to an incident, names no school
    or no due time, or belongs to an incident without a police reference: each is a fault of
    the caller, and guessing would risk telling a school about the wrong child.
    """
    by_ref: dict[str, list[int]] = {}
    for index, incident in enumerate(incidents):
        by_ref.setdefault(incident.ref, []).append(index)

    # (incident index, URN) -> (child, due, school name) of each notify decision
    groups: dict[tuple[int, int], list[tuple[ChildRecord, datetime, str]]] = {}
    for decision in decisions:
        if decision.outcome is not Outcome.NOTIFY:
            continue
        index = _incident_of(decision, incidents, by_ref)
        if decision.urn is None or decision.due is None:
            raise ValueError(
                f"incident {decision.incident_ref}: a notify decision without a school or a due"
                " time cannot become a notification"
            )
        groups.setdefault((index, decision.urn), []).append(
            (decision.child, decision.due, decision.school_name)
        )

    notifications: list[Notification] = []
    seen: set[str] = set()
    for (index, urn), chosen in groups.items():
        incident = incidents[index]
        reference = reference_code(incident.ref, urn)
        if reference in seen:
            raise ValueError(
                f"incident {incident.ref} appears twice with children at URN {urn}: one"
                " notification per incident per school needs one incident per reference"
            )
        seen.add(reference)
        named = [child for child, _, _ in chosen]
        notifications.append(
            Notification(
                reference=reference,
                # The incident travels without its children list (the model insists): only
                # this school's children are named.
                incident=replace(incident, children=()),
                urn=urn,
                school_name=chosen[0][2],
                children=tuple(child for child in incident.children if child in named),
                due=min(due for _, due, _ in chosen),
            )
        )
    return notifications


def _incident_of(
    decision: Decision, incidents: Sequence[Incident], by_ref: dict[str, list[int]]
) -> int:
    if not decision.incident_ref:
        raise ValueError(
            "a notify decision for an incident without a police reference: such a child"
            " must be an exception for the Navigator"
        )
    for index in by_ref.get(decision.incident_ref, ()):
        if decision.child in incidents[index].children:
            return index
    raise ValueError(
        f"incident {decision.incident_ref}: the decided child (row {decision.child.source.row})"
        " is not one of the incident's children"
    )
