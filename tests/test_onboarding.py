"""Joining the scheme: `encompass-gateway onboard URN` sends the school's DSL the welcome pack,
signed by the Navigator's key and not encrypted, with the school's name and its council
filled in, and no child's data; and refuses a school that cannot join."""

import shutil
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import jinja2
import pytest
from click.testing import CliRunner
from invariants import assert_signed_only, signed_part_bytes
from mail_world import SendingDay
from pgp_keys import PgpKey

from gateway.cli import cli
from gateway.config import REPOSITORY_RULES
from gateway.errors import RulesError
from gateway.model import Contact, ContactRole, Establishment
from gateway.own_mail import LOOP_HEADER
from gateway.render import NavigatorContact
from gateway.welcome import (
    LETTER_FILE,
    POLICY_FILE,
    NavigatorKey,
    load_onboarding_rules,
    render_welcome,
)

AT_NINE = "2026-03-02T09:00:00+00:00"
AFTER_NINE = "2026-03-02T10:00:00+00:00"
NEXT_DAY = "2026-03-03T10:00:00+00:00"
COUNCILS = {873: "Cambridgeshire County Council", 874: "Peterborough City Council"}


def school_in(sending_day: SendingDay, la_code: int) -> Establishment:
    """An open school of that LA, one the sample day notified when there is one."""
    schools = [
        e for e in sending_day.sample.directory.establishments if e.is_open and e.la_code == la_code
    ]
    return sorted(schools, key=lambda e: (e.urn not in sending_day.notified, e.urn))[0]


def dsl_of(sending_day: SendingDay, urn: int) -> dict[str, str]:
    (row,) = [r for r in sending_day.contacts() if int(r["URN"]) == urn and r["Role"] == "DSL"]
    return row


def parts(entity: EmailMessage) -> dict[str, str]:
    """The signed entity's text parts by file name ("" for the email's own text)."""
    found = {}
    for part in entity.walk():
        if part.get_content_maintype() == "text":
            found[part.get_filename() or ""] = " ".join(str(part.get_content()).split())
    return found


@pytest.mark.parametrize("la_code", [873, 874])
def test_onboarding_a_school_sends_its_dsl_a_signed_welcome_with_its_name_and_council_and_no_child_data(  # noqa: E501
    sending_day: SendingDay, navigator_key: PgpKey, la_code: int
) -> None:
    # A sample day first, so the state holds children's names and dates of birth.
    sending_day.run("process", str(sending_day.sample.workbook))
    sending_day.run("dispatch", now=AT_NINE)
    school = school_in(sending_day, la_code)
    dsl = dsl_of(sending_day, school.urn)

    out = sending_day.run("onboard", str(school.urn), now=AFTER_NINE).output
    assert f"queued to {dsl['Email'].lower()}" in out and "dispatch: 1 sent" in out

    (welcome,) = sending_day.received("welcome")
    assert welcome.rcpt_tos == (dsl["Email"],)
    entity = assert_signed_only(
        welcome.data,
        verifier=sending_day.verifier,
        navigator_fingerprint=navigator_key.fingerprint,
        must_not_contain=[child.written_name for child in sending_day.sample.expected],
        dates_of_birth=[child.dob for child in sending_day.sample.expected],
    )
    headers = welcome.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "Auto-Submitted: auto-generated" in headers and f"{LOOP_HEADER}: " in headers
    assert "Disposition-Notification-To" not in headers
    text = parts(entity)
    council = COUNCILS[la_code]
    for name in ("", LETTER_FILE, POLICY_FILE):
        assert school.name in text[name] and council in text[name], name
    other = COUNCILS[873 if la_code == 874 else 874]
    assert all(other not in body for body in text.values())
    assert dsl["Name"] in text[""] and navigator_key.email in text[""]
    assert "Secure notification OE-" in text[""]
    # The check above fails for a single changed byte of what was signed.
    signed = signed_part_bytes(welcome.data, "encompass.pgpmime_signed")
    tampered = welcome.data.replace(signed, signed.replace(b"Dear", b"Deer", 1))
    with pytest.raises(AssertionError, match="no good signature"):
        assert_signed_only(
            tampered,
            verifier=sending_day.verifier,
            navigator_fingerprint=navigator_key.fingerprint,
            must_not_contain=[],
        )


def test_onboard_by_hand_sends_the_welcome_again_on_purpose(sending_day: SendingDay) -> None:
    school = school_in(sending_day, 873)
    first = sending_day.run("onboard", str(school.urn), now=AFTER_NINE).output
    again = sending_day.run("onboard", str(school.urn), now=NEXT_DAY).output
    assert len(sending_day.received("welcome")) == 2
    assert first.split()[2] != again.split()[2]  # a new reference each time: "welcome pack GW-…"
    with sending_day.state() as conn:
        (state,) = conn.execute("SELECT state FROM welcome WHERE urn = ?", (school.urn,)).fetchone()
        audited = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE event = 'onboarding.welcome_queued'"
        ).fetchone()[0]
    assert state == "welcomed" and audited == 2


def _refused(sending_day: SendingDay, urn: int, reason: str) -> None:
    result = sending_day.invoke("onboard", str(urn), now=AFTER_NINE)
    assert result.exit_code == 2, result.output
    assert reason in result.output
    with sending_day.state() as conn:
        assert (
            conn.execute("SELECT COUNT(*) FROM message WHERE kind = 'welcome'").fetchone()[0] == 0
        )
    assert sending_day.sink.received == []


def test_a_closed_school_is_refused(sending_day: SendingDay) -> None:
    closed = next(e for e in sending_day.sample.directory.establishments if not e.is_open)
    _refused(sending_day, closed.urn, "is not open (Closed in the GIAS extract)")


def test_a_school_outside_the_area_is_refused(sending_day: SendingDay) -> None:
    outside = next(
        e
        for e in sending_day.sample.directory.establishments
        if e.is_open and e.la_code not in COUNCILS
    )
    _refused(sending_day, outside.urn, f"(LA {outside.la_code}), outside this area (LA 873, 874")


def test_a_school_without_a_dsl_email_is_refused(sending_day: SendingDay) -> None:
    school = school_in(sending_day, 874)
    rows = [
        r
        for r in sending_day.contacts()
        if not (int(r["URN"]) == school.urn and r["Role"] == "DSL")
    ]
    sending_day.write_contacts(rows)
    sending_day.run("directory", "import", "--no-progress")
    _refused(sending_day, school.urn, "has no DSL with an email address in the contacts list")


def test_a_urn_not_in_the_directory_is_refused(sending_day: SendingDay) -> None:
    _refused(sending_day, 999999, "URN 999999 is not in the directory")


# --------------------------------------------------------------------------------------
# The templates and the rules


NAVIGATOR = NavigatorContact("Sam Navigator", "navigator@mash.example.org", "01632 960000")
KEY = NavigatorKey("0123456789ABCDEF0123456789ABCDEF01234567", "-----BEGIN PGP PUBLIC KEY")


def _school(la_code: int) -> Establishment:
    return Establishment(
        140001, "St Thérèse's Primary School", la_code, "LA", "Academy", "Primary", "Open", True,
        telephone="01632 960123",
    )  # fmt: skip


def _render(la_code: int, **navigator: str) -> dict[str, str]:
    rules = load_onboarding_rules(REPOSITORY_RULES, area_la_codes=(873, 874))
    inner = render_welcome(
        _school(la_code),
        Contact(140001, ContactRole.DSL, "Jo Example", "jo@school.example.org"),
        authority=rules.local_authorities[la_code],
        navigator=replace(NAVIGATOR, **navigator),
        navigator_key=KEY,
        reminder_days=(7, 30, 1),
    )
    return parts(inner)


@pytest.mark.parametrize(("la_code", "council"), sorted(COUNCILS.items()))
def test_the_templates_render_for_each_council(la_code: int, council: str) -> None:
    text = _render(la_code)
    assert set(text) == {"", LETTER_FILE, POLICY_FILE}
    for body in text.values():
        assert "St Thérèse's Primary School" in body and council in body
        assert "None" not in body and "{{" not in body
    assert "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567" in text[""]
    assert "01632 960123" in text[""] and "ring the Navigator yourself on 01632 960000" in text[""]
    assert "Jo Example" in text[LETTER_FILE]
    assert "reminder by email 30, 7 and 1 days before your key expires" in text[""]


def test_without_a_navigator_phone_the_welcome_leaves_the_number_out() -> None:
    text = _render(873, phone="")
    assert "ring the Navigator yourself" not in text[""]


def test_an_undefined_template_value_is_an_error_not_a_blank(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "onboarding").mkdir(parents=True)
    for name in ("welcome.txt", "letter.txt", "policy.txt"):
        (templates / "onboarding" / name).write_text("{{ school.nickname }}\n", encoding="utf-8")
    rules = load_onboarding_rules(REPOSITORY_RULES, area_la_codes=(873, 874))
    with pytest.raises(jinja2.UndefinedError):
        render_welcome(
            _school(873),
            Contact(140001, ContactRole.DSL, "Jo Example", "jo@school.example.org"),
            authority=rules.local_authorities[873],
            navigator=NAVIGATOR,
            navigator_key=KEY,
            reminder_days=(30,),
            templates_dir=templates,
        )


def test_the_onboarding_rules_must_name_every_council_of_the_area() -> None:
    with pytest.raises(
        RulesError, match=r"onboarding.toml: local_authorities: no entry for LA 875"
    ):
        load_onboarding_rules(REPOSITORY_RULES, area_la_codes=(873, 874, 875))


def test_check_stops_on_onboarding_rules_that_miss_a_council(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPOSITORY_RULES, rules)
    text = (rules / "onboarding.toml").read_text(encoding="utf-8")
    (rules / "onboarding.toml").write_text(text.split("[local_authorities.874]")[0])
    config = tmp_path / "gateway.toml"
    config.write_text(f'[rules]\ndirectory = "{rules}"\n[state]\ndatabase = "state/g.sqlite3"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert "onboarding.toml: local_authorities: no entry for LA 874" in result.output


def test_check_warns_while_a_councils_questions_address_is_a_placeholder(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPOSITORY_RULES, rules)
    text = (rules / "onboarding.toml").read_text(encoding="utf-8")
    real = text.replace("@peterborough.example.org", "@peterborough-council.internal")
    (rules / "onboarding.toml").write_text(real, encoding="utf-8")
    config = tmp_path / "gateway.toml"
    config.write_text(f'[rules]\ndirectory = "{rules}"\n[state]\ndatabase = "state/g.sqlite3"\n')
    output = CliRunner().invoke(cli, ["--config", str(config), "check"]).output
    assert (
        "warning: " + str(rules / "onboarding.toml") + ": local_authorities.873.questions_email "
        "education.safeguarding@cambridgeshire.example.org is a placeholder"
    ) in output
    assert "local_authorities.874" not in output
