"""The gateway's one error hierarchy.

Every class says when it is raised. Messages are written for the Navigator or the LA
administrator: they name the file, the row or key, the value, and what was expected.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file is missing, unreadable, or has an unknown key or a wrong value."""


class RulesError(GatewayError):
    """A file under rules/ is missing, malformed, or has a value outside what is allowed."""


class SecretError(GatewayError):
    """A secret (password, passphrase) named by the configuration cannot be read."""


class DirectoryImportError(GatewayError):
    """A GIAS extract, contacts list or pupil roll cannot be imported; the old directory stays."""


class SpreadsheetRefused(GatewayError):
    """A police spreadsheet is refused whole: not an xlsx, hostile, oversized, or unreadable.

    Nothing from a refused file is processed; the Navigator is told why.
    """


class StateError(GatewayError):
    """The state database is missing, locked by another instance, or from an unknown version."""


class CalendarError(RulesError):
    """A term calendar or per-school override (TOML or iCalendar) cannot be understood."""
