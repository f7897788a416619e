"""What the DSL reads: the text and HTML parts of a notification, full and minimal."""

from __future__ import annotations

import email.policy
import sys
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import LONDON
from gateway.model import (
    ChildRecord,
    CrimeStatus,
    Incident,
    Notification,
    NotificationKind,
    Risk,
    SourceRow,
)
from gateway.render import (
    NavigatorContact,
    _quoted_printable,
    notification_entity,
    render_notification,
    subject_for,
)

NAVIGATOR = NavigatorContact("Sam Navigator", "navigator@mash.example.org", "01223 555 010")
REFERENCE = "OE-7K3MQ-9TXAB"
AVA = ChildRecord(
    "Ava",
    "Example",
    date(2016, 3, 4),
    SourceRow("day.xlsx", "Incidents", 5),
    involvement="Witnessed",
    relationship="Mother and her partner",
    voice_of_child="Said she hid upstairs",
)
BEN = ChildRecord(
    "Ben",
    "Example",
    date(2018, 7, 1),
    SourceRow("day.xlsx", "Incidents", 6),
    involvement="Present",
    relationship="Mother and her partner",
)
INCIDENT = Incident(
    "CC-20260228-0042",
    datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
    Risk.MEDIUM,
    CrimeStatus.NON_CRIME,
    (),
    circumstances="Verbal argument between the adults.\nNeighbour called police.",
    location="Home address",
    other_info="Previous incident in January",
)


def notification(
    *children: ChildRecord, incident: Incident = INCIDENT, school: str = "Histon Fen Primary"
) -> Notification:
    return Notification(
        REFERENCE,
        incident,
        110001,
        school,
        children or (AVA, BEN),
        datetime(2026, 3, 2, 9, 0, tzinfo=LONDON),
    )


def render(note: Notification, template: str = "full", **options: object) -> EmailMessage:
    return render_notification(note, navigator=NAVIGATOR, template=template, **options)  # type: ignore[arg-type]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def both(message: EmailMessage) -> list[str]:
    return list(parts(message))


# --------------------------------------------------------------------------------------
# The MIME entity


def test_notification_is_text_and_html_alternatives_in_utf8() -> None:
    message = render(notification())

    assert message.get_content_type() == "multipart/alternative"
    inner = list(message.iter_parts())
    assert [part.get_content_type() for part in inner] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in inner)


def test_inner_subject_is_the_protected_copy_of_the_subject() -> None:
    message = render(notification())

    assert message["Subject"] == subject_for(REFERENCE)
    assert message.get_param("protected-headers") == "v1"


def test_non_ascii_names_survive_in_both_parts() -> None:
    zoe = replace(AVA, forename="Zoë", surname="Ní Bhriain")

    for part in both(render(notification(zoe))):
        assert "Zoë Ní Bhriain" in part


def rebuilt_by_the_email_package(message: EmailMessage) -> bytes:
    """The subject and parts of `message` put together with EmailMessage's set_content and
    add_alternative, with the boundary of `message`, written out for SMTP."""
    text, html = parts(message)
    rebuilt = EmailMessage()
    rebuilt["Subject"] = message["Subject"]
    rebuilt.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    rebuilt.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    rebuilt.set_param("protected-headers", "v1")
    boundary = message.get_boundary()
    assert boundary is not None
    rebuilt.set_boundary(boundary)
    return rebuilt.as_bytes(policy=email.policy.SMTP)


@pytest.mark.parametrize("template", ["full", "minimal"])
def test_the_entity_is_written_as_the_email_package_would_write_it(template: str) -> None:
    entity = notification_entity(notification(), navigator=NAVIGATOR, template=template)

    assert entity == rebuilt_by_the_email_package(render(notification(), template))


# Police text of any kind: long lines, trailing spaces, "=", non-ASCII, control characters.
_POLICE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200
) | st.sampled_from(
    ["a" * 200, "ends in spaces   ", "x=3D =\n--=_", "Zo\u00eb \u00e9t\u00e9 \u20ac"]
)


@settings(max_examples=150, deadline=None)
@given(forename=_POLICE_TEXT, circumstances=_POLICE_TEXT, location=_POLICE_TEXT)
def test_any_police_text_is_written_as_the_email_package_would_write_it(
    forename: str, circumstances: str, location: str
) -> None:
    incident = replace(INCIDENT, circumstances=circumstances, location=location)
    note = notification(replace(AVA, forename=forename), incident=incident)

    entity = notification_entity(note, navigator=NAVIGATOR, template="full")

    assert entity.isascii()
    assert entity.count(b"\n") == entity.count(b"\r\n")
    assert entity == rebuilt_by_the_email_package(render(note))


@settings(max_examples=400, deadline=None)
@given(
    text=st.text(st.sampled_from(list("ab =\t\n\r\x0b\x0c\x85.\u00e9\u20ac")), max_size=400)
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)
)
def test_quoted_printable_is_what_set_content_writes(text: str) -> None:
    part = EmailMessage()
    part.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    payload = part.get_payload()
    assert isinstance(payload, str)

    assert _quoted_printable(text) == payload.replace("\n", "\r\n").encode("ascii")


# --------------------------------------------------------------------------------------
# The full template


@pytest.mark.parametrize(
    "expected",
    [
        "domestic abuse incident",
        "Saturday 28 February 2026, 22:15",
        "Home address",
        "Verbal argument between the adults.",
        "Neighbour called police.",
        "Ava Example",
        "4 March 2016",
        "Witnessed",
        "Ben Example",
        "1 July 2018",
        "Present",
        "Mother and her partner",
        "Said she hid upstairs",
        "Previous incident in January",
        "CC-20260228-0042",
        "Medium",
        "Non-crime",
        "chronology",
        "threshold document",
        "Early Help",
        "Children's Social Care",
        "Do not contact the parents or carers",
        "Operation Encompass protocol",
        "Reply to this email",
        "read receipt",
        "Sam Navigator",
        "navigator@mash.example.org",
        "01223 555 010",
        REFERENCE,
    ],
)
def test_full_notification_says_everything_the_protocol_shares(expected: str) -> None:
    text, html = parts(render(notification()))

    assert expected in text
    assert expected in html


def test_missing_police_details_are_said_to_be_missing() -> None:
    bare = replace(INCIDENT, risk=None, crime_status=None, circumstances="", other_info="")
    quiet = replace(AVA, relationship="", voice_of_child="", involvement="")

    for part in both(render(notification(quiet, incident=bare))):
        assert "Risk level" in part and "not given" in part
        assert "Not given by the police." in part
        assert "None given by the police." in part
        assert "not recorded" in part


def test_time_not_recorded_when_the_police_gave_only_the_date() -> None:
    dated = replace(
        INCIDENT, occurred_at=datetime(2026, 2, 28, 0, 0, tzinfo=LONDON), time_known=False
    )

    for part in both(render(notification(incident=dated))):
        assert "Saturday 28 February 2026, time not recorded" in part
        assert "00:00" not in part


def test_date_and_time_not_recorded_when_the_police_gave_neither() -> None:
    undated = replace(INCIDENT, occurred_at=None)

    for part in both(render(notification(incident=undated))):
        assert "date and time not recorded" in part


def test_time_is_shown_in_london_time_in_summer() -> None:
    # 21:15 UTC on 1 June is 22:15 British Summer Time.
    summer = replace(INCIDENT, occurred_at=datetime(2026, 6, 1, 21, 15, tzinfo=UTC))

    for part in both(render(notification(incident=summer))):
        assert "Monday 1 June 2026, 22:15" in part


def test_navigator_without_a_telephone_number_gives_email_only() -> None:
    message = render_notification(
        notification(),
        navigator=replace(NAVIGATOR, phone=""),
        template="full",
    )

    for part in both(message):
        assert "navigator@mash.example.org" in part
        assert "Telephone" not in part


FIRST = "OE-AAAAA-BBBBB"


def follow_up(kind: NotificationKind, *changes: str) -> Notification:
    return replace(
        notification(), reference=f"{FIRST}-2", kind=kind, follows=FIRST, changes=changes
    )


@pytest.mark.parametrize("template", ["full", "minimal"])
def test_amendment_says_which_notification_it_amends_and_what_changed(template: str) -> None:
    amended = follow_up(NotificationKind.AMENDMENT, "Date and time of the incident")
    message = render(amended, template)

    assert message["Subject"] == f"Secure notification {FIRST}-2 (amended)"
    for part in both(message):
        assert f"amends notification {FIRST}" in part
        assert "Date and time of the incident" in part
        assert "Ava Example" in part  # the corrected details follow, as in any notification


@pytest.mark.parametrize("template", ["full", "minimal"])
def test_a_child_added_says_which_notification_it_follows(template: str) -> None:
    added = follow_up(NotificationKind.NOTIFICATION)
    message = render(added, template)

    assert message["Subject"] == f"Secure notification {FIRST}-2"
    for part in both(message):
        assert f"follows notification {FIRST}" in part
        assert "mended" not in part


def test_an_ordinary_notification_says_nothing_of_amendment() -> None:
    for part in both(render(notification())):
        assert "mended" not in part
        assert "follows notification" not in part


@pytest.mark.parametrize("template", ["full", "minimal"])
def test_withdrawal_names_what_it_withdraws_and_no_incident_detail(template: str) -> None:
    withdrawal = follow_up(NotificationKind.WITHDRAWAL)
    withdrawal = replace(withdrawal, children=(AVA,))
    message = render(withdrawal, template)

    assert message["Subject"] == f"Secure notification {FIRST}-2 (withdrawn)"
    for part in both(message):
        assert f"notification {FIRST}, sent earlier, is withdrawn" in part
        assert "Ava Example" in part
        assert "Ben Example" not in part
        for detail in ("Verbal argument", "Previous incident", "22:15", "Medium"):
            assert detail not in part


def test_a_follow_up_must_name_the_notification_it_follows() -> None:
    with pytest.raises(ValueError, match="must name the notification it follows"):
        replace(notification(), reference=f"{FIRST}-2", kind=NotificationKind.AMENDMENT)
    with pytest.raises(ValueError, match="numbered after"):
        replace(notification(), follows=FIRST)


# --------------------------------------------------------------------------------------
# The minimal template


def test_minimal_notification_gives_names_dates_of_birth_time_and_presence() -> None:
    for part in both(render(notification(), "minimal")):
        for expected in (
            "Ava Example",
            "4 March 2016",
            "Witnessed",
            "Ben Example",
            "1 July 2018",
            "Present",
            "Saturday 28 February 2026, 22:15",
            "Do not contact the parents or carers",
            "Sam Navigator",
            REFERENCE,
        ):
            assert expected in part


@pytest.mark.parametrize(
    "withheld",
    [
        "Verbal argument",
        "Neighbour called police",
        "Mother and her partner",
        "Previous incident in January",
        "Said she hid upstairs",
        "Home address",
        "Relationship",
        "circumstances",
    ],
)
def test_minimal_notification_leaves_out_circumstances_relationship_and_other_information(
    withheld: str,
) -> None:
    for part in both(render(notification(), "minimal")):
        assert withheld not in part


def test_unknown_template_name_is_refused() -> None:
    with pytest.raises(ValueError, match="full, minimal"):
        render(notification(), "detailed")


# --------------------------------------------------------------------------------------
# Police text is untrusted


HOSTILE = '<script>alert("x")</script><img src="https://evil.example/t.gif">'


def test_html_in_police_text_is_escaped_in_the_html_part() -> None:
    incident = replace(
        INCIDENT, circumstances=HOSTILE, location=HOSTILE, other_info=HOSTILE, ref=HOSTILE
    )
    child = replace(
        AVA, forename=HOSTILE, relationship=HOSTILE, voice_of_child=HOSTILE, involvement=HOSTILE
    )

    _, html = parts(render(notification(child, incident=incident, school=HOSTILE)))

    assert "<script" not in html
    assert "<img" not in html
    assert html.count("&lt;script&gt;") == 9  # every field above


def test_html_part_loads_nothing_from_outside() -> None:
    _, html = parts(render(notification()))

    for outside in ("<script", "<img", "<link", "src=", "href=", "http://", "https://", "url("):
        assert outside not in html


def test_police_text_is_never_read_as_a_template() -> None:
    incident = replace(INCIDENT, circumstances="{{ navigator.email }} {% if true %}x{% endif %}")

    for part in both(render(notification(incident=incident))):
        assert "{{ navigator.email }} {% if true %}x{% endif %}" in part


def test_control_characters_are_stripped_from_the_text_part() -> None:
    child = replace(AVA, forename="Ava\x00\x1b[2J", surname="Ex\u202eelpma")
    incident = replace(INCIDENT, circumstances="One\x07 line\r\nTwo\x0c lines\u2028Three")

    text, html = parts(render(notification(child, incident=incident)))

    for part in (text, html):
        assert not any(ch in part for ch in "\x00\x1b\x07\x0c\r\u202e\u2028")
        assert "Ava[2J Exelpma" in part
    assert "  One line\n  Two lines\n  Three\n" in text


def test_every_control_and_bidirectional_character_is_stripped() -> None:
    controls = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"]
    bidi = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    hidden = [ch for ch in [*controls, *bidi] if ch not in "\t\n\r\x85"]  # breaks, spaces
    child = replace(AVA, forename="A" + "".join(hidden) + "va")

    for part in both(render(notification(child))):
        assert "Ava Example" in part
        assert not any(ch in part for ch in hidden)


def test_a_line_break_inside_a_name_does_not_break_the_layout() -> None:
    child = replace(AVA, forename="Ava\nDate of birth: 1 January 2000", surname="Example")

    text, _ = parts(render(notification(child)))

    assert "1. Ava Date of birth: 1 January 2000 Example\n" in text


# --------------------------------------------------------------------------------------
# Templates are strict


def test_a_template_using_a_missing_value_fails_rather_than_leaving_a_blank(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "notification"
    folder.mkdir()
    (folder / "full.txt").write_text("Risk: {{ incident.risk_level }}\n", encoding="utf-8")
    (folder / "full.html").write_text("<p>{{ reference }}</p>\n", encoding="utf-8")

    with pytest.raises(jinja2.UndefinedError, match="risk_level"):
        render(notification(), templates_dir=tmp_path)


# --------------------------------------------------------------------------------------
# The subject


def test_subject_carries_only_the_reference() -> None:
    assert subject_for(REFERENCE) == f"Secure notification {REFERENCE}"
    assert subject_for(REFERENCE, kind=NotificationKind.AMENDMENT) == (
        f"Secure notification {REFERENCE} (amended)"
    )


def test_no_child_school_or_incident_detail_in_any_header() -> None:
    message = render(notification())
    headers = [f"{name}: {value}" for part in message.walk() for name, value in part.items()]

    for detail in ("Ava", "Ben", "Example", "2016", "Histon", "CC-2026", "Home", "Medium"):
        assert not any(detail in header for header in headers), detail
