"""A small, fixed rules/ folder for the calendar and routing tests.

The shipped rules/calendars are the LA's data and will change; these dates are the tests'
own, chosen so each rule has a day to show it (see the comments).
"""

from __future__ import annotations

from pathlib import Path

# 2025-26 for one LA. Features the tests lean on:
#  * October half term is 20-24 Oct 2025, so Monday 27 Oct, the day after the clock goes
#    back, is a school day;
#  * spring term runs to Thursday 2 April 2026, so Monday 30 March, the day after the
#    clock goes forward, is a school day;
#  * Monday 4 May 2026 is a bank holiday in term;
#  * Monday 9 March 2026 is an INSET day in term; Monday 20 April 2026, the first day after
#    Easter, is an INSET day too.
LA_TERMS = """\
la_code = {la_code}
name = "{name}"
covers_from = 2025-09-01
covers_to = 2026-08-31
inset_days = [2025-09-01, 2026-03-09, 2026-04-20]

[[terms]]
name = "Autumn term 2025"
start = 2025-09-01
end = 2025-12-19

[[holidays]]
name = "October half term 2025"
start = 2025-10-20
end = 2025-10-24

[[terms]]
name = "Spring term 2026"
start = 2026-01-05
end = 2026-04-02

[[holidays]]
name = "February half term 2026"
start = 2026-02-16
end = 2026-02-20

[[terms]]
name = "Summer term 2026"
start = 2026-04-20
end = 2026-07-22

[[holidays]]
name = "May half term 2026"
start = 2026-05-25
end = 2026-05-29
"""


def write_rules(root: Path, schools: dict[str, str | bytes] | None = None) -> Path:
    """Write rules/calendars for LAs 873 and 874 (and any school files) under `root`."""
    rules = root / "rules"
    calendars = rules / "calendars"
    (calendars / "schools").mkdir(parents=True)
    for la_code, name in ((873, "Cambridgeshire"), (874, "Peterborough")):
        text = LA_TERMS.format(la_code=la_code, name=f"{name} term dates")
        (calendars / f"{name.lower()}-{la_code}.toml").write_text(text)
    for file_name, content in (schools or {}).items():
        path = calendars / "schools" / file_name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return rules


def ics(*events: str) -> bytes:
    """An iCalendar file around `events` (each the lines inside one VEVENT)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN"]
    for index, event in enumerate(events):
        lines += ["BEGIN:VEVENT", f"UID:event-{index}@tests", "DTSTAMP:20250601T000000Z"]
        lines += event.strip().splitlines()
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()
