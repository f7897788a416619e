from collections.abc import Callable

from gateway.model import Contact, ContactRole, ExceptionKind
from gateway.recipients import KeyVerdict, choose_recipients

FPR = "A" * 40


def contact(role: ContactRole, email: str, fingerprint: str = FPR) -> Contact:
    return Contact(100001, role, "Contact", email, fingerprint=fingerprint)


def keys(**problems: ExceptionKind) -> Callable[[Contact], KeyVerdict]:
    def check(c: Contact) -> KeyVerdict:
        kind = problems.get(c.email.split("@")[0])
        return KeyVerdict(kind, f"{kind} for {c.email}" if kind else "")

    return check


DSL = contact(ContactRole.DSL, "dsl@school.example.org")
LEAD = contact(ContactRole.DA_LEAD, "lead@school.example.org")
DEPUTY = contact(ContactRole.DEPUTY_DSL, "deputy@school.example.org")


def test_dsl_and_da_lead_with_usable_keys_both_receive() -> None:
    choice = choose_recipients([DEPUTY, LEAD, DSL], keys())
    assert choice.recipients == (DSL, LEAD)
    assert choice.exception is None


def test_deputy_stands_in_only_when_neither_dsl_nor_lead_can_receive() -> None:
    choice = choose_recipients(
        [DSL, LEAD, DEPUTY],
        keys(dsl=ExceptionKind.KEY_EXPIRED, lead=ExceptionKind.KEY_REVOKED),
    )
    assert choice.recipients == (DEPUTY,)
    assert [u.kind for u in choice.unusable] == [
        ExceptionKind.KEY_EXPIRED,
        ExceptionKind.KEY_REVOKED,
    ]


def test_a_contact_without_a_usable_key_gets_nothing_while_another_does() -> None:
    choice = choose_recipients([DSL, LEAD], keys(lead=ExceptionKind.KEY_MISMATCH))
    assert choice.recipients == (DSL,)
    assert choice.unusable[0].contact == LEAD


def test_no_contact_is_an_exception() -> None:
    choice = choose_recipients([], keys())
    assert (choice.recipients, choice.exception) == ((), ExceptionKind.NO_CONTACT)


def test_no_pinned_fingerprint_is_no_key_without_asking_gnupg() -> None:
    asked: list[Contact] = []

    def check(c: Contact) -> KeyVerdict:
        asked.append(c)
        return KeyVerdict(None)

    choice = choose_recipients([contact(ContactRole.DSL, "dsl@x.example.org", "")], check)
    assert choice.exception is ExceptionKind.NO_KEY
    assert asked == []


def test_when_nobody_can_receive_the_dsl_problem_names_the_exception() -> None:
    choice = choose_recipients(
        [DEPUTY, DSL],
        keys(dsl=ExceptionKind.KEY_REVOKED, deputy=ExceptionKind.KEY_EXPIRED),
    )
    assert choice.recipients == ()
    assert choice.exception is ExceptionKind.KEY_REVOKED
    assert "dsl@school.example.org" in choice.reason and "deputy@school" in choice.reason
