"""The welcome pack a school's DSL is sent when the school joins the scheme: what Operation
Encompass is, what a notification will look like, how to send (and renew) an OpenPGP key and
confirm its fingerprint by telephone, and — attached — the letter to parents and carers and
the paragraph for the school's safeguarding policy (the protocol's Appendices 2 and 3, in our
own words), filled in with the school's name, its council and who to ask.

Rendered from the jinja2 templates in templates/onboarding/ through the same sandboxed,
strict environment as notifications (gateway/render.py). The pack holds no child's data and
is signed, not encrypted: the DSL may have no key yet (gateway/onboarding.py sends it).

The letter and the paragraph are attachments rather than sections of the email: the school
puts the letter on its own letterhead and the paragraph into its policy document, so each
arrives as a whole file of its own, apart from the instructions meant for the DSL alone,
and each is covered by the Navigator's signature like the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from pydantic import Field

from gateway.errors import RulesError
from gateway.keyring import spaced_fingerprint
from gateway.model import Contact, Establishment
from gateway.render import (
    TEMPLATES_DIR,
    NavigatorContact,
    clean_line,
    subject_for,
    template_environment,
)
from gateway.validation import Strict, load_toml_model

LETTER_FILE = "letter-to-parents-and-carers.txt"
POLICY_FILE = "safeguarding-policy-paragraph.txt"
NAVIGATOR_KEY_FILE = "navigator-public-key.asc"
# What a notification's subject looks like, shown to the DSL (the format of
# notifications.reference_code; not a real reference).
EXAMPLE_REFERENCE = "OE-7K3MQ-9TXAB"


class LocalAuthority(Strict):
    """One LA of rules/onboarding.toml: the council's name and who answers questions."""

    council: str = Field(min_length=1)
    questions_team: str = Field(min_length=1)
    questions_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    questions_phone: str = ""


class OnboardingRules(Strict):
    """rules/onboarding.toml, keyed by GIAS "LA (code)"."""

    local_authorities: dict[int, LocalAuthority]


def load_onboarding_rules(rules_dir: Path, *, area_la_codes: tuple[int, ...]) -> OnboardingRules:
    """rules_dir/onboarding.toml; RulesError naming the file and key when it is malformed or
    lacks an LA of the area (routing.toml `area_la_codes`)."""
    path = rules_dir / "onboarding.toml"
    rules = load_toml_model(path, OnboardingRules, RulesError)
    missing = sorted(set(area_la_codes) - set(rules.local_authorities))
    if missing:
        raise RulesError(
            f"{path}: local_authorities: no entry for LA {', '.join(map(str, missing))} of "
            "routing.toml area_la_codes; add [local_authorities.<code>] with its council"
        )
    return rules


# Domains reserved for examples and tests (RFC 2606, RFC 6761): mail to them goes nowhere.
_RESERVED_DOMAIN = re.compile(
    r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$", re.IGNORECASE
)


def placeholder_addresses(rules: OnboardingRules, rules_dir: Path) -> list[str]:
    """A line for each LA whose questions address is still a placeholder (a reserved domain,
    as shipped): the letter to parents and carers would give it to every family."""
    return [
        f"{rules_dir / 'onboarding.toml'}: local_authorities.{code}.questions_email "
        f"{authority.questions_email} is a placeholder; the letter to parents and carers "
        "gives it: set the real team's address"
        for code, authority in sorted(rules.local_authorities.items())
        if _RESERVED_DOMAIN.search(authority.questions_email.rpartition("@")[2])
    ]


@dataclass(frozen=True)
class NavigatorKey:
    """The Navigator's signing key as the DSL is told of it: to verify notifications."""

    fingerprint: str  # 40 hex digits
    armored: str  # the public key, attached to the pack


def render_welcome(
    school: Establishment,
    dsl: Contact,
    *,
    authority: LocalAuthority,
    navigator: NavigatorContact,
    navigator_key: NavigatorKey,
    reminder_days: tuple[int, ...],
    templates_dir: Path = TEMPLATES_DIR,
) -> EmailMessage:
    """The welcome pack's inner entity, 7-bit for signing: the text of the email, then the
    letter to parents and carers, the safeguarding policy paragraph and the Navigator's
    public key as attachments. `reminder_days`: how long before a key stops working its
    holder is asked for a renewed one ([keys] warn_days).

    Raises jinja2.UndefinedError when a template uses a value that is not given.
    """
    environment = template_environment(templates_dir)
    school_name = clean_line(school.name)
    context = {
        "school": {
            "name": school_name,
            "urn": school.urn,
            "telephone": clean_line(school.telephone),
        },
        "dsl": {"name": clean_line(dsl.name), "email": clean_line(dsl.email)},
        "council": clean_line(authority.council),
        "questions": {
            "team": clean_line(authority.questions_team),
            "email": clean_line(authority.questions_email),
            "phone": clean_line(authority.questions_phone),
        },
        "navigator": {
            "name": clean_line(navigator.name),
            "email": clean_line(navigator.email),
            "phone": clean_line(navigator.phone),
            "fingerprint": spaced_fingerprint(navigator_key.fingerprint),
        },
        "example_subject": subject_for(EXAMPLE_REFERENCE),
        "reminder_days": _spoken_list([str(days) for days in sorted(reminder_days, reverse=True)]),
        "files": {"letter": LETTER_FILE, "policy": POLICY_FILE, "key": NAVIGATOR_KEY_FILE},
    }

    def text(name: str) -> str:
        return environment.get_template(f"onboarding/{name}").render(context)

    message = EmailMessage()
    message["Subject"] = f"Operation Encompass: {school_name} joins the scheme"
    # Quoted-printable throughout: a signed entity must be 7-bit (RFC 3156 §5.1), and a
    # school's or a person's name need not be ASCII.
    message.set_content(text("welcome.txt"), cte="quoted-printable")
    for name, file_name in (("letter.txt", LETTER_FILE), ("policy.txt", POLICY_FILE)):
        message.add_attachment(text(name), filename=file_name, cte="quoted-printable")
    message.add_attachment(
        navigator_key.armored.encode("ascii"),
        maintype="application",
        subtype="pgp-keys",
        filename=NAVIGATOR_KEY_FILE,
    )
    del message["MIME-Version"]  # an inner entity: the outer message has its own
    return message


def _spoken_list(items: list[str]) -> str:
    """'30, 7 and 1'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
