"""Every file under rules/, loaded and validated once at start-up.

A run loads the rules before it touches any input, so a broken rules file stops the gateway
with the file and key named rather than half-way through a spreadsheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.calendar import SchoolCalendar, load_calendar
from gateway.matching import MatchPolicy, load_match_policy
from gateway.names import Nicknames, load_nicknames
from gateway.routing import RoutingPolicy, load_routing_policy
from gateway.schoolnames import SchoolAliases, load_school_aliases
from gateway.spreadsheet import HeaderMap, load_header_map


@dataclass(frozen=True)
class Rules:
    headers: HeaderMap
    nicknames: Nicknames
    school_aliases: SchoolAliases
    matching: MatchPolicy
    routing: RoutingPolicy
    calendar: SchoolCalendar


def load_rules(rules_dir: Path) -> Rules:
    return Rules(
        headers=load_header_map(rules_dir),
        nicknames=load_nicknames(rules_dir),
        school_aliases=load_school_aliases(rules_dir),
        matching=load_match_policy(rules_dir),
        routing=load_routing_policy(rules_dir),
        calendar=load_calendar(rules_dir),
    )
