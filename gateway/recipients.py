"""Who at a school receives a notification — only contacts whose pinned key is usable.

Fail closed: a contact without a usable key gets nothing, and when nobody at the school can
receive, the notification becomes an exception naming why, so no byte of child data leaves.
The key check itself is passed in, so this rule is tested without GnuPG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.model import Contact, ContactRole, ExceptionKind


@dataclass(frozen=True)
class KeyVerdict:
    """The outcome of checking one contact's pinned key (None: usable)."""

    problem: ExceptionKind | None
    reason: str = ""


@dataclass(frozen=True)
class Unusable:
    contact: Contact
    kind: ExceptionKind
    reason: str


@dataclass(frozen=True)
class RecipientChoice:
    recipients: tuple[Contact, ...]
    unusable: tuple[Unusable, ...]  # contacts passed over, for the Navigator and the audit
    exception: ExceptionKind | None = None
    reason: str = ""


# The DSL and the DA Lead receive notifications; a deputy DSL only stands in when neither
# can (and, later, when the DSL is away or their mail bounces).
_FIRST = (ContactRole.DSL, ContactRole.DA_LEAD)
_STAND_IN = (ContactRole.DEPUTY_DSL,)


def choose_recipients(
    contacts: Sequence[Contact], check: Callable[[Contact], KeyVerdict]
) -> RecipientChoice:
    if not contacts:
        return RecipientChoice(
            (), (), ExceptionKind.NO_CONTACT, "the school has no DSL, deputy DSL or DA Lead listed"
        )
    ordered = sorted(contacts, key=lambda c: (_FIRST + _STAND_IN).index(c.role))
    unusable: list[Unusable] = []
    for roles in (_FIRST, _STAND_IN):
        usable = []
        for contact in (c for c in ordered if c.role in roles):
            verdict = _verdict(contact, check)
            if verdict.problem is None:
                usable.append(contact)
            else:
                unusable.append(Unusable(contact, verdict.problem, verdict.reason))
        if usable:
            return RecipientChoice(tuple(usable), tuple(unusable))
    first = unusable[0]  # the DSL's problem when there is one: they are tried first
    return RecipientChoice(
        (),
        tuple(unusable),
        first.kind,
        "no contact at the school can receive an encrypted notification: "
        + "; ".join(f"{u.contact.role.value} {u.contact.email}: {u.reason}" for u in unusable),
    )


def _verdict(contact: Contact, check: Callable[[Contact], KeyVerdict]) -> KeyVerdict:
    if not contact.fingerprint:
        return KeyVerdict(ExceptionKind.NO_KEY, "no pinned key fingerprint in the contacts list")
    return check(contact)
