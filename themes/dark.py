"""portside-dark: the default theme, calm blue on charcoal."""

from __future__ import annotations

from textual.theme import Theme

THEME = Theme(
    name="portside-dark",
    primary="#4EA1F3",
    secondary="#9D8CF0",
    accent="#F0A35E",
    warning="#E5C07B",
    error="#EF6B73",
    success="#7BC86C",
    foreground="#D8DEE9",
    background="#14181F",
    surface="#1B2029",
    panel="#252C37",
    dark=True,
)
