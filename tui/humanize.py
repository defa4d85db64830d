"""Human-readable sizes and durations, worded the way the docker CLI words them.

Pure functions with no Textual or network dependency, so tables, dialogs and tests share
one formatting (``docker ps`` / ``docker images`` users read the same strings here).
"""

from __future__ import annotations

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_size(size: float | None) -> str:
    """Decimal units with three significant digits: ``4.26MB``, ``999B``, ``1.2GB``."""
    if size is None or size < 0:
        return "-"
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_SIZE_UNITS) - 1:
        value /= 1000
        unit += 1
    text = f"{value:.3g}"
    if ("e" in text or float(text) >= 1000) and unit < len(_SIZE_UNITS) - 1:
        # Rounding carried into the next unit (999.7kB -> 1MB).
        value /= 1000
        unit += 1
        text = f"{value:.3g}"
    return f"{text}{_SIZE_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """Docker's ``HumanDuration``: "Less than a second", "About a minute", "3 hours", ..."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def human_age(timestamp: float | None, now: float) -> str:
    """How long ago ``timestamp`` (epoch seconds) was: ``5 minutes ago``; ``-`` if unknown."""
    if not timestamp or timestamp <= 0:
        return "-"
    return f"{human_duration(max(0.0, now - timestamp))} ago"


def short_id(identifier: str, length: int = 12) -> str:
    """An object id without its ``sha256:`` prefix, cut to ``length`` characters."""
    _, _, hexpart = identifier.rpartition(":")
    return hexpart[:length]


def ellipsize(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when it was cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"
