"""The Navigator's commands: parsed line by line (acting on nothing), then carried out on a
real state database — real GnuPG keys, the gateway's own intake, sealing and dispatch to an
SMTP sink — each verb acting, each refusal changing nothing, every command audited."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import pytest
from invariants import assert_sealed
from navigator_world import (
    ACORN,
    AFTER_NINE,
    AVA,
    AVA_AT_ELM,
    BEFORE_NINE,
    ELM,
    ELM_DEPUTY,
    ELM_DSL,
    FARAWAY,
    FINN,
    FINN_NOTIFICATION,
    KEYLESS,
    NINE,
    OAK,
    SHUT,
    World,
)
from pgp_keys import PgpKey

from gateway.commands import (
    Command,
    CommandError,
    Item,
    ItemKind,
    Verb,
    parse_command,
    parse_commands,
)
from gateway.digest import build_digest
from gateway.digest_render import render_digest
from gateway.keyring import Keyring
from gateway.notifications import reference_code
from gateway.render import NavigatorContact

# --------------------------------------------------------------------------------------
# Parsing


def test_a_route_line_names_the_child_and_the_school() -> None:
    assert parse_command("ROUTE C123 110123") == Command(
        Verb.ROUTE, Item(ItemKind.CHILD, "C123"), "110123"
    )


def test_verbs_and_codes_are_understood_in_any_case() -> None:
    command = parse_command("  resend oe-7k3mq-9txab deputy ")
    assert command == Command(Verb.RESEND, Item(ItemKind.NOTIFICATION, "OE-7K3MQ-9TXAB"), "DEPUTY")


def test_a_withdrawal_names_the_notification_or_one_of_its_follow_ups() -> None:
    assert parse_command("withdraw oe-7k3mq-9txab-3") == Command(
        Verb.WITHDRAW, Item(ItemKind.NOTIFICATION, "OE-7K3MQ-9TXAB-3")
    )


def test_free_text_is_kept_as_written() -> None:
    command = parse_command("WITHHOLD C7 Family moved to Norfolk;  passed to their police")
    assert command.argument == "Family moved to Norfolk;  passed to their police"
    assert str(command) == "WITHHOLD C7"  # what is echoed back leaves the text out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "ROUTE C123",
            "no URN is not a URN (six digits): ROUTE needs an item and a URN, e.g. ROUTE C123",
        ),
        ("ROUTE C123 Elm Primary", "'Elm Primary' is not a URN"),
        ("ROUTE OE-7K3MQ-9TXAB 110123", "OE-7K3MQ-9TXAB is a notification: ROUTE needs"),
        ("ROUET C123 110123", "'ROUET' is not a command; the commands are ROUTE, WITHHOLD"),
        ("WITHHOLD C123", "the text is missing: WITHHOLD needs an item and a reason"),
        ("CALLED B4 spoke to the DSL", "B4 is a spreadsheet batch: CALLED needs"),
        ("RESEND OE-7K3MQ-9TXAB please", "'please' is not DEPUTY"),
        ("APPROVE C12", "C12 is a child's decision: APPROVE needs a batch"),
        ("APPROVE ALL now", "'now' after the item"),
        ("NOTE", "nothing after the command"),
        ("NOTE X99 something", "'X99' is not an item code"),
        ("APPROVE OE-7K3MQ-9TXAI", "is not an item code"),  # I is not Crockford
        ("WITHDRAW C12", "C12 is a child's decision: WITHDRAW needs a notification"),
        ("WITHDRAW OE-7K3MQ-9TXAB now", "'now' after the item"),
    ],
)
def test_a_malformed_line_says_what_is_wrong_with_an_example(line: str, expected: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(line, number=2)
    assert str(raised.value).startswith("line 2: ")
    assert expected in str(raised.value)


def test_an_error_does_not_echo_a_whole_sentence_back() -> None:
    with pytest.raises(CommandError) as raised:
        parse_command("ROUTE C1 Ava Ashdown now lives with her grandmother in Ely")
    assert "grandmother" not in str(raised.value)


def test_a_reply_is_read_past_quotes_and_blank_lines_up_to_the_signature() -> None:
    body = (
        "ROUTE C12 110001\r\n"
        "\r\n"
        "> 1. [C12] Ava Ashdown, born 4 May 2016\r\n"
        ">> ROUTE C99 110002\r\n"
        "  CALLED C14 spoke to the DSL at 09:10\r\n"
        "APPROVE B3 please\r\n"
        "-- \r\n"
        "Sam Navigator\r\n"
        "ROUTE C15 110002\r\n"
    )
    parsed = parse_commands(body)
    assert [line.number for line in parsed] == [1, 5, 6]
    assert parsed[0].command == Command(Verb.ROUTE, Item(ItemKind.CHILD, "C12"), "110001")
    assert parsed[1].command is not None and parsed[1].command.verb is Verb.CALLED
    assert parsed[2].command is None and parsed[2].error is not None
    assert str(parsed[2].error).startswith("line 6: ")


def test_a_trimmed_signature_delimiter_still_ends_the_commands() -> None:
    assert parse_commands("NOTE C1 checked\n--\nROUTE C2 110001\n")[-1].number == 1


@pytest.mark.parametrize(
    "separator",
    [
        "-----Original Message-----",
        "________________________________",
        "From: Education Navigator <navigator@mash.example.org>",
        "On Mon, 2 Mar 2026 at 08:30, Education Navigator <navigator@mash.example.org> wrote:",
        "Begin forwarded message:",
    ],
)
def test_the_digest_left_unquoted_below_a_reply_is_not_read_as_commands(separator: str) -> None:
    body = (
        "ROUTE C12 110001\r\n"
        "\r\n"
        f"{separator}\r\n"
        "Sent: 02 March 2026 08:30\r\n"
        "Subject: Exceptions digest\r\n"
        "1. [C12] Ava Ashdown, born 4 May 2016: no pupil found\r\n"
    )
    parsed = parse_commands(body)
    assert [(line.number, line.error) for line in parsed] == [(1, None)]


# --------------------------------------------------------------------------------------
# Carrying them out


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Every table but the audit log, to show a refusal changed nothing."""
    tables = [
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if row[0] != "audit"
    ]
    return {
        table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
        for table in tables
    }


def commands_audited(conn: sqlite3.Connection) -> list[tuple[str, dict[str, object]]]:
    return [
        (row["event"], json.loads(row["data"]))
        for row in conn.execute(
            "SELECT event, data FROM audit WHERE event LIKE 'command.%' ORDER BY seq"
        )
    ]


def test_route_notifies_the_named_school_at_nine_like_any_notification(
    navigator_world: World,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    ava = navigator_world.decision_id("CC-1001")
    result = navigator_world.run(f"ROUTE C{ava} {ELM}", signer=navigator_key.fingerprint)
    assert result.done, result.line
    assert AVA_AT_ELM in result.detail and "09:00" in result.detail
    assert not result.send_now
    assert navigator_world.dispatch(BEFORE_NINE) == 0
    assert navigator_world.dispatch(NINE) == 2  # Finn's notification and Ava's, each to Elm's DSL
    received = [r for r in navigator_world.sink.received if AVA_AT_ELM.encode() in r.data]
    assert [r.rcpt_tos for r in received] == [(ELM_DSL,)]
    for message in received:
        (recipient,) = message.rcpt_tos
        assert_sealed(
            message.data,
            recipient_home_or_keyring=recipient_home(navigator_world.keys[recipient]),
            navigator_fingerprint=navigator_key.fingerprint,
            reference=AVA_AT_ELM,
            must_contain=[AVA.display_name],
            must_not_contain=[FINN.display_name],
            dates_of_birth=[AVA.dob] if AVA.dob else [],
        )
    assert commands_audited(navigator_world.conn) == [
        (
            "command.route",
            {
                "item": f"C{ava}",
                "signer": navigator_key.fingerprint,
                "outcome": "done",
                "urn": ELM,
            },
        )
    ]


def test_route_after_nine_is_due_at_once(navigator_world: World) -> None:
    ava = navigator_world.decision_id("CC-1001")
    result = navigator_world.run(f"ROUTE C{ava} {OAK}", now=AFTER_NINE)
    assert result.done and result.send_now
    assert "to be sent at once" in result.detail
    navigator_world.dispatch(AFTER_NINE)
    oak = reference_code("CC-1001", OAK)
    assert [r.rcpt_tos for r in navigator_world.sink.received if oak.encode() in r.data] == [
        ("dsl@oak.example.org",)
    ]


@pytest.mark.parametrize(
    ("urn", "reason"),
    [
        (SHUT, f"school {SHUT} (Shut Primary) is closed"),
        (FARAWAY, f"school {FARAWAY} (Faraway School) is out of area: LA 926"),
        (KEYLESS, "cannot be sent it: no contact at the school can receive"),
        (ACORN, "is an early-years setting, telephoned rather than sent mail"),
        (999999, "school 999999 is not in the GIAS establishment list"),
    ],
)
def test_route_to_a_school_routing_would_refuse_is_refused_and_nothing_changes(
    navigator_world: World, urn: int, reason: str
) -> None:
    ava = navigator_world.decision_id("CC-1001")
    before = snapshot(navigator_world.conn)
    result = navigator_world.run(f"ROUTE C{ava} {urn}")
    assert not result.done
    assert reason in result.detail
    assert result.line.startswith(f"REFUSED ROUTE C{ava} {urn}: ")
    assert snapshot(navigator_world.conn) == before
    assert commands_audited(navigator_world.conn)[-1] == (
        "command.route",
        {"item": f"C{ava}", "signer": None, "outcome": "refused"},
    )


def test_route_of_an_unknown_item_or_a_child_that_is_not_an_exception_is_refused(
    navigator_world: World,
) -> None:
    assert (
        navigator_world.run("ROUTE C999 110001").detail
        == "C999 is not a child's decision on record"
    )
    finn = navigator_world.decision_id("CC-1005")
    assert (
        "is not an exception (its outcome is notify)"
        in navigator_world.run(f"ROUTE C{finn} {ELM}").detail
    )


def test_an_exception_is_routed_once(navigator_world: World) -> None:
    ava = navigator_world.decision_id("CC-1001")
    assert navigator_world.run(f"ROUTE C{ava} {ELM}").done
    again = navigator_world.run(f"ROUTE C{ava} {OAK}")
    assert (
        not again.done and "already resolved (ROUTE on Monday 2 March 2026, 08:00)" in again.detail
    )


def test_route_to_a_school_already_told_of_the_incident_sends_a_follow_up_naming_the_child(
    navigator_world: World,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    ava = navigator_world.decision_id("CC-1001")
    # As if Ava were Finn's sibling, in the incident Elm Primary is already told about.
    navigator_world.conn.execute(
        "UPDATE decision SET incident_ref = 'CC-1005' WHERE id = ?", (ava,)
    )
    navigator_world.conn.execute(
        "UPDATE exception_detail SET content = seal(json_set(unseal(content), '$.incident',"
        " json((SELECT json_extract(unseal(content), '$.incident') FROM notification"
        " WHERE reference = ?)))) WHERE decision_id = ?",
        (FINN_NOTIFICATION, ava),
    )
    navigator_world.dispatch(NINE)
    result = navigator_world.run(f"ROUTE C{ava} {ELM}", now=AFTER_NINE)
    assert result.done, result.line
    assert f"notification {FINN_NOTIFICATION}-2 sealed" in result.detail
    navigator_world.dispatch(AFTER_NINE)
    (follow_up,) = [
        r for r in navigator_world.sink.received if f"{FINN_NOTIFICATION}-2".encode() in r.data
    ]
    assert_sealed(
        follow_up.data,
        recipient_home_or_keyring=recipient_home(navigator_world.keys[ELM_DSL]),
        navigator_fingerprint=navigator_key.fingerprint,
        reference=f"{FINN_NOTIFICATION}-2",
        must_contain=[AVA.display_name],
        must_not_contain=[FINN.display_name],
        dates_of_birth=[AVA.dob] if AVA.dob else [],
    )


def test_a_routed_or_withheld_child_leaves_the_digest(navigator_world: World) -> None:
    def open_items() -> tuple[int, int]:
        digest = build_digest(navigator_world.conn, now=BEFORE_NINE, since=None)
        return len(digest.child_exceptions), len(digest.telephone_tasks)

    assert open_items() == (1, 1)
    assert navigator_world.run(
        f"WITHHOLD C{navigator_world.decision_id('CC-1001')} Passed to Norfolk police"
    ).done
    assert navigator_world.run(
        f"CALLED C{navigator_world.decision_id('CC-1002')} Spoke to the DSL"
    ).done
    assert open_items() == (0, 0)
    # Still counted among the day's children: settled, not forgotten.
    counts = build_digest(navigator_world.conn, now=BEFORE_NINE, since=None).counts
    assert (counts.children, counts.exceptions, counts.to_telephone) == (3, 1, 1)


def test_withhold_of_a_sealed_notification_cancels_its_messages_for_good(
    navigator_world: World,
) -> None:
    result = navigator_world.run(f"WITHHOLD {FINN_NOTIFICATION} the police asked us to wait")
    assert result.done, result.line
    assert navigator_world.dispatch(NINE) == 0
    assert navigator_world.sink.received == []
    states = {row[0] for row in navigator_world.conn.execute("SELECT state FROM message")}
    assert states == {"cancelled"}
    assert (
        navigator_world.conn.execute(
            "SELECT state FROM notification WHERE reference = ?", (FINN_NOTIFICATION,)
        ).fetchone()[0]
        == "withheld"
    )


def test_withhold_of_a_sent_notification_is_refused(navigator_world: World) -> None:
    navigator_world.dispatch(NINE)
    result = navigator_world.run(f"WITHHOLD {FINN_NOTIFICATION} too late", now=AFTER_NINE)
    assert not result.done
    assert result.detail.startswith(f"{FINN_NOTIFICATION} was already sent at Monday 2 March")


def test_withhold_of_a_child_being_notified_points_at_the_notification(
    navigator_world: World,
) -> None:
    result = navigator_world.run(f"WITHHOLD C{navigator_world.decision_id('CC-1005')} wait")
    assert not result.done and FINN_NOTIFICATION in result.detail


def test_called_is_for_a_telephone_task(navigator_world: World) -> None:
    finn = navigator_world.decision_id("CC-1005")
    result = navigator_world.run(f"CALLED C{finn} spoke to them")
    assert not result.done and "is not a telephone task" in result.detail


def test_resend_seals_a_new_message_with_a_new_message_id_to_the_same_recipients(
    navigator_world: World,
) -> None:
    navigator_world.dispatch(NINE)
    first = {r.rcpt_tos for r in navigator_world.sink.received}
    result = navigator_world.run(f"RESEND {FINN_NOTIFICATION}", now=AFTER_NINE)
    assert result.done and result.send_now, result.line
    assert navigator_world.dispatch(AFTER_NINE) == len(first)
    ids = [
        row[0]
        for row in navigator_world.conn.execute(
            "SELECT message_id FROM message WHERE reference = ?", (FINN_NOTIFICATION,)
        )
    ]
    assert len(ids) == 2 * len(first) == len(set(ids))
    assert {r.rcpt_tos for r in navigator_world.sink.received[len(first) :]} == first


def test_resend_to_the_deputy_reuses_the_stand_in_resend(navigator_world: World) -> None:
    navigator_world.conn.execute("DELETE FROM contact WHERE email = ?", (ELM_DEPUTY,))
    navigator_world.conn.execute(
        "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
        " VALUES (?, 'deputy_dsl', 'Dev Deputy', ?, '', ?)",
        (ELM, "deputy2@elm.example.org", navigator_world.keys[ELM_DEPUTY].fingerprint),
    )
    navigator_world.dispatch(NINE)
    result = navigator_world.run(f"RESEND {FINN_NOTIFICATION} DEPUTY", now=AFTER_NINE)
    assert result.done, result.line
    assert "deputy_dsl" in result.detail


def test_resend_of_a_notification_not_yet_sent_is_refused(navigator_world: World) -> None:
    result = navigator_world.run(f"RESEND {FINN_NOTIFICATION}")
    assert not result.done and "has not been sent yet: it is due Monday 2 March" in result.detail


def test_a_note_is_kept_out_of_the_audit_log(navigator_world: World, navigator_key: PgpKey) -> None:
    ava = navigator_world.decision_id("CC-1001")
    result = navigator_world.run(
        f"NOTE C{ava} Grandmother Edna says Ava moved", signer=navigator_key.fingerprint
    )
    assert result.done
    (raw, text) = navigator_world.conn.execute(
        "SELECT text, unseal(text) FROM resolution"
    ).fetchone()
    assert b"Edna" not in raw  # sealed at rest
    assert text == "Grandmother Edna says Ava moved"
    audit_text = " ".join(row[0] for row in navigator_world.conn.execute("SELECT data FROM audit"))
    assert "Edna" not in audit_text
    # A note does not resolve anything: Ava still needs the Navigator.
    digest = build_digest(navigator_world.conn, now=BEFORE_NINE, since=None)
    assert len(digest.child_exceptions) == 1


def test_notes_on_a_notification_and_a_batch(navigator_world: World) -> None:
    assert navigator_world.run(f"NOTE {FINN_NOTIFICATION} DSL rang back").done
    assert navigator_world.run(f"NOTE B{navigator_world.intake_id} a clean file").done
    assert navigator_world.run("NOTE B999 nothing").detail == "B999 is not a spreadsheet on record"
    assert navigator_world.run(f"NOTE {reference_code('CC-9', ELM)} x").detail.endswith(
        "is not a notification on record"
    )


def test_approve_without_approval_mode_has_nothing_to_approve(navigator_world: World) -> None:
    result = navigator_world.run("APPROVE ALL")
    assert not result.done and result.detail == "nothing in ALL is waiting for approval"


def test_the_digest_shows_each_items_code_and_how_to_reply(navigator_world: World) -> None:
    digest = build_digest(navigator_world.conn, now=BEFORE_NINE, since=None)
    inner = render_digest(digest, navigator=NavigatorContact("Sam Navigator", "n@x.org", ""))
    text = inner.get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()
    ava, cal = navigator_world.decision_id("CC-1001"), navigator_world.decision_id("CC-1002")
    assert f"1. [C{ava}] Ava Ashdown" in content
    assert f"1. [C{cal}] Acorn Nursery (URN {ACORN})" in content
    assert "one command per line" in content and "ROUTE C12 110123" in content
    # What the reply instructions promise is what the parser takes.
    for line in content.split("TO ACT ON AN ITEM")[1].splitlines():
        if line.startswith("  ROUTE "):
            assert parse_command(line.split("  ")[1].strip()).verb is Verb.ROUTE


def test_resend_of_a_notification_no_key_could_take_seals_it_once_a_key_is_usable(
    navigator_world: World,
) -> None:
    # As sealing leaves a notification when no contact's key could be used: no messages.
    navigator_world.conn.execute("DELETE FROM message WHERE reference = ?", (FINN_NOTIFICATION,))
    navigator_world.conn.execute(
        "UPDATE notification SET state = 'exception', exception_kind = 'no_key'"
        " WHERE reference = ?",
        (FINN_NOTIFICATION,),
    )
    assert (
        len(build_digest(navigator_world.conn, now=AFTER_NINE, since=None).notification_exceptions)
        == 1
    )
    result = navigator_world.run(f"RESEND {FINN_NOTIFICATION}", now=AFTER_NINE)
    assert result.done and result.send_now, result.line
    assert "to the dsl" in result.detail
    assert (
        build_digest(navigator_world.conn, now=AFTER_NINE, since=None).notification_exceptions == ()
    )
    navigator_world.dispatch(AFTER_NINE)
    assert [r.rcpt_tos for r in navigator_world.sink.received] == [(ELM_DSL,)]
