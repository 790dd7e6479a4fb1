"""Monitoring indicators of cluster initiatives (the scoreboard). Pure functions."""

from .scoreboard import ALL, INDICATORS, available, scoreboard

__all__ = ["ALL", "INDICATORS", "available", "scoreboard"]
