"""portside-colorblind: the Okabe-Ito palette, safe for red-green and blue-yellow deficiencies.

Success and error differ in hue and lightness (bluish green vs vermillion) and every state is
also spelt out in text with a glyph, so nothing relies on colour alone.
"""

from __future__ import annotations

from textual.theme import Theme

THEME = Theme(
    name="portside-colorblind",
    primary="#56B4E9",
    secondary="#CC79A7",
    accent="#E69F00",
    warning="#F0E442",
    error="#D55E00",
    success="#009E73",
    foreground="#E8E8E8",
    background="#1A1C22",
    surface="#20232A",
    panel="#2B2F38",
    dark=True,
)
