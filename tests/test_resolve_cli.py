"""`encompass-gateway resolve`: the same commands as by signed mail, from the command line."""

from __future__ import annotations

from click.testing import CliRunner, Result
from navigator_world import (
    AFTER_NINE,
    BEFORE_NINE,
    ELM_DSL,
    FINN_NOTIFICATION,
    NINE,
    OAK,
    SHUT,
    World,
)

from gateway.cli import cli
from gateway.notifications import reference_code


def resolve(navigator_world: World, *args: str, now: str = BEFORE_NINE.isoformat()) -> Result:
    assert navigator_world.config.source is not None
    return CliRunner().invoke(
        cli, ["--config", str(navigator_world.config.source), "--now", now, "resolve", *args]
    )


def test_resolve_routes_after_nine_and_sends_at_once(navigator_world: World) -> None:
    ava = navigator_world.decision_id("CC-1001")
    result = resolve(navigator_world, "ROUTE", f"C{ava}", str(OAK), now=AFTER_NINE.isoformat())
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"DONE ROUTE C{ava} {OAK}: C{ava} routed to Oak Academy")
    assert "dispatch: " in result.output
    oak = reference_code("CC-1001", OAK)
    assert [r.rcpt_tos for r in navigator_world.sink.received if oak.encode() in r.data] == [
        ("dsl@oak.example.org",)
    ]
    actor, signer = navigator_world.conn.execute(
        "SELECT actor, signer FROM resolution WHERE verb = 'ROUTE'"
    ).fetchone()
    assert (actor, signer) == ("cli", None)


def test_a_refusal_exits_1_and_says_why(navigator_world: World) -> None:
    ava = navigator_world.decision_id("CC-1001")
    result = resolve(navigator_world, "ROUTE", f"C{ava}", str(SHUT))
    assert result.exit_code == 1
    assert f"REFUSED ROUTE C{ava} {SHUT}: school {SHUT} (Shut Primary) is closed" in result.output


def test_free_text_may_be_given_as_several_words(navigator_world: World) -> None:
    task = navigator_world.decision_id("CC-1002")
    result = resolve(navigator_world, "CALLED", f"C{task}", "spoke", "to", "the", "DSL")
    assert result.exit_code == 0, result.output
    text = navigator_world.conn.execute("SELECT unseal(text) FROM resolution").fetchone()[0]
    assert text == "spoke to the DSL"


def test_a_malformed_command_exits_2_naming_the_problem(navigator_world: World) -> None:
    result = resolve(navigator_world, "ROUTE", "C1")
    assert result.exit_code == 2
    assert "ROUTE needs an item and a URN, e.g. ROUTE C123 110123" in result.output


def test_withdraw_seals_a_withdrawal_notice_and_sends_it_at_once(navigator_world: World) -> None:
    navigator_world.dispatch(NINE)
    result = resolve(navigator_world, "WITHDRAW", FINN_NOTIFICATION, now=AFTER_NINE.isoformat())
    assert result.exit_code == 0, result.output
    notice = f"{FINN_NOTIFICATION}-2"
    assert result.output.startswith(
        f"DONE WITHDRAW {FINN_NOTIFICATION}: withdrawal notice {notice} (1 child) sealed"
    )
    withdrawn = f"{notice} (withdrawn)".encode()
    assert [r.rcpt_tos for r in navigator_world.sink.received if withdrawn in r.data] == [
        (ELM_DSL,)
    ]
