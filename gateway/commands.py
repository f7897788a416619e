"""The Navigator's commands: one per line, the same verbs by signed mail and by the CLI.

    ROUTE <C…> <URN>              send an exception child's notification to that school
    WITHHOLD <C…|OE-…> <reason>   not to be sent: a child decision, or a notification not sent
    CALLED <C…> <note>            a telephone task done
    RESEND <OE-…> [DEPUTY]        again to the same recipients, or to the school's stand-ins
    NOTE <C…|OE-…|B…> <text>      a note on the record, changing nothing
    APPROVE <B…|OE-…|ALL>         approval mode: let waiting notifications go
    WITHDRAW <OE-…>               a withdrawal notice to the school: the police took it back

Items are named by the codes the digest shows (the brief's shared codes): a child's decision
`C<decision id>`, a notification by its reference `OE-XXXXX-XXXXX` (a follow-up about the same
incident and school adds `-2`, `-3`…), a spreadsheet batch `B<intake id>`.

Parsing is pure and acts on nothing, so a mail can be checked whole before any line of it is
executed: a mail with one malformed line is refused entire (DESIGN.md section 5.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gateway.errors import GatewayError


class CommandError(GatewayError):
    """A command line cannot be understood: an unknown verb, a missing or malformed item,
    URN or text. The message names the line and gives an example of the right form."""


class Verb(StrEnum):
    ROUTE = "ROUTE"
    WITHHOLD = "WITHHOLD"
    CALLED = "CALLED"
    RESEND = "RESEND"
    NOTE = "NOTE"
    APPROVE = "APPROVE"
    WITHDRAW = "WITHDRAW"


class ItemKind(StrEnum):
    CHILD = "child"  # C<decision id>
    NOTIFICATION = "notification"  # OE-XXXXX-XXXXX, or a follow-up OE-XXXXX-XXXXX-N
    BATCH = "batch"  # B<intake id>
    ALL = "all"  # APPROVE ALL


# The verbs that settle a child's decision: it leaves the digest's lists of things needing
# a person (a NOTE adds to the record and settles nothing).
RESOLVING = (Verb.ROUTE, Verb.WITHHOLD, Verb.CALLED)

DEPUTY = "DEPUTY"
ALL = "ALL"

# Crockford's base32, as gateway/notifications.py makes references (no I, L, O or U).
_SYMBOL = "[0-9A-HJKMNP-TV-Z]"
_NOTIFICATION = re.compile(rf"OE-{_SYMBOL}{{5}}-{_SYMBOL}{{5}}(?:-[1-9][0-9]*)?")
_NUMBERED = re.compile(r"([CB])([1-9][0-9]{0,11})")
_URN = re.compile(r"[1-9][0-9]{5,7}")  # GIAS URNs are six digits today; room to grow


@dataclass(frozen=True)
class Item:
    """An item code, normalised to capitals ("c12" is C12)."""

    kind: ItemKind
    code: str

    @property
    def number(self) -> int:
        """The decision id of C<n> or the intake id of B<n>."""
        if self.kind not in (ItemKind.CHILD, ItemKind.BATCH):
            raise ValueError(f"{self.code} has no number")
        return int(self.code[1:])


@dataclass(frozen=True)
class Command:
    """One command as written: `argument` is the URN (ROUTE), DEPUTY or "" (RESEND), the
    reason or note a person wrote (WITHHOLD, CALLED, NOTE), or "" (APPROVE)."""

    verb: Verb
    item: Item
    argument: str = ""

    def __str__(self) -> str:
        # What the reply and the CLI echo: the free text is not repeated (it may name people).
        shown = self.argument if self.verb in (Verb.ROUTE, Verb.RESEND) else ""
        return " ".join(part for part in (self.verb.value, self.item.code, shown) if part)


@dataclass(frozen=True)
class ParsedLine:
    """One line of a mail that holds a command: the command, or why it is not one."""

    number: int  # 1-based line number in the text given
    text: str
    command: Command | None
    error: CommandError | None


_KIND_WORDS = {
    ItemKind.CHILD: "a child's decision",
    ItemKind.NOTIFICATION: "a notification",
    ItemKind.BATCH: "a spreadsheet batch",
    ItemKind.ALL: "every waiting notification",
}

# What each verb takes: the item kinds allowed, what follows, and an example for errors.
_USAGE: dict[Verb, tuple[frozenset[ItemKind], str, str]] = {
    Verb.ROUTE: (frozenset({ItemKind.CHILD}), "an item and a URN", "ROUTE C123 110123"),
    Verb.WITHHOLD: (
        frozenset({ItemKind.CHILD, ItemKind.NOTIFICATION}),
        "an item and a reason",
        "WITHHOLD C123 family moved to Norfolk, passed to their police",
    ),
    Verb.CALLED: (
        frozenset({ItemKind.CHILD}),
        "a telephone task and a note of the call",
        "CALLED C123 spoke to the DSL at 09:10",
    ),
    Verb.RESEND: (
        frozenset({ItemKind.NOTIFICATION}),
        "a notification, and DEPUTY to send it to the school's stand-ins",
        "RESEND OE-7K3MQ-9TXAB DEPUTY",
    ),
    Verb.NOTE: (
        frozenset({ItemKind.CHILD, ItemKind.NOTIFICATION, ItemKind.BATCH}),
        "an item and the note",
        "NOTE C123 school confirms the child left in January",
    ),
    Verb.APPROVE: (
        frozenset({ItemKind.BATCH, ItemKind.NOTIFICATION, ItemKind.ALL}),
        "a batch, a notification or ALL",
        "APPROVE B42",
    ),
    Verb.WITHDRAW: (
        frozenset({ItemKind.NOTIFICATION}),
        "a notification",
        "WITHDRAW OE-7K3MQ-9TXAB",
    ),
}


def parse_item(text: str) -> Item | None:
    """The item a code names, or None when it is not a code of any kind."""
    code = text.strip().upper()
    if code == ALL:
        return Item(ItemKind.ALL, code)
    if _NOTIFICATION.fullmatch(code):
        return Item(ItemKind.NOTIFICATION, code)
    numbered = _NUMBERED.fullmatch(code)
    if numbered:
        kind = ItemKind.CHILD if numbered.group(1) == "C" else ItemKind.BATCH
        return Item(kind, code)
    return None


def parse_command(line: str, *, number: int | None = None) -> Command:
    """The command on one line; CommandError naming the line (when `number` is given) and
    what is wrong, with an example."""
    where = f"line {number}: " if number is not None else ""
    words = line.split()
    if not words:
        raise CommandError(f"{where}no command on this line")
    try:
        verb = Verb(words[0].upper())
    except ValueError:
        raise CommandError(
            f"{where}{_shown(words[0])} is not a command; the commands are "
            f"{', '.join(verb.value for verb in Verb)}"
        ) from None
    kinds, needs, example = _USAGE[verb]

    def wrong(what: str) -> CommandError:
        return CommandError(f"{where}{what}: {verb.value} needs {needs}, e.g. {example}")

    if len(words) < 2:
        raise wrong("nothing after the command")
    item = parse_item(words[1])
    if item is None:
        raise wrong(f"{_shown(words[1])} is not an item code (C…, OE-…, B…)")
    if item.kind not in kinds:
        raise wrong(f"{item.code} is {_KIND_WORDS[item.kind]}")
    rest = line.split(None, 2)[2].strip() if len(words) > 2 else ""
    if verb is Verb.ROUTE:
        if len(words) != 3 or not _URN.fullmatch(words[2]):
            shown = _shown(rest) if rest else "no URN"
            raise wrong(f"{shown} is not a URN (six digits)")
        return Command(verb, item, words[2])
    if verb is Verb.RESEND:
        if rest and rest.upper() != DEPUTY:
            raise wrong(f"{_shown(rest)} is not DEPUTY")
        return Command(verb, item, rest.upper())
    if verb in (Verb.APPROVE, Verb.WITHDRAW):
        if rest:
            raise wrong(f"{_shown(rest)} after the item")
        return Command(verb, item)
    if not rest:
        raise wrong("the text is missing")
    return Command(verb, item, rest)


def parse_commands(text: str) -> list[ParsedLine]:
    """Every command line of a mail body, each parsed or with its error; nothing is acted on.

    Blank lines and quoted lines ("> …", the digest quoted in a reply) are passed over, and
    the signature delimiter ("-- ", RFC 3676 section 4.3; "--" as some mail programs trim it)
    ends the commands: what follows is the sender's signature, not something to act on.
    So does the start of the original below a reply that does not quote it with "> "
    (Outlook's "From: … Sent: …" block or its rule, "-----Original Message-----", "On … wrote:"):
    the digest's own text would otherwise be read as malformed commands and refuse the mail.
    """
    parsed: list[ParsedLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if raw.rstrip("\r\n") in ("-- ", "--") or _REPLY_SEPARATOR.match(line):
            break
        if not line or line.startswith(">"):
            continue
        try:
            parsed.append(ParsedLine(number, line, parse_command(line, number=number), None))
        except CommandError as error:
            parsed.append(ParsedLine(number, line, None, error))
    return parsed


# The lines mail programs put between a reply and the original they leave unquoted below it.
# None can begin a command: every command begins with its verb.
_REPLY_SEPARATOR = re.compile(
    r"-{2,}\s*Original Message\s*-{2,}"  # Outlook (plain text), Exchange
    r"|_{10,}"  # Outlook's rule above the original's headers
    r"|From:\s"  # Outlook's header block of the original ("From: … Sent: … To: …")
    r"|On\s.*\swrote:$"  # Thunderbird, Apple Mail, Gmail (one line)
    r"|Begin forwarded message:",
    re.IGNORECASE,
)


def _shown(text: str) -> str:
    # Echo at most a few characters of what was written: enough to find it, not a whole
    # sentence that may name someone (the error goes back by mail and into the CLI's output).
    return repr(text if len(text) <= 24 else text[:21] + "...")
