"""Tracklane: self-hosted partner-marketing tracking (clicks, conversions, events, payouts)."""

__version__ = "0.1.0"
