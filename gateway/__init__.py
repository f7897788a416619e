"""Encompass Gateway: police domestic-abuse notifications to the right school, sealed, by 09:00."""

__version__ = "0.1.0"
