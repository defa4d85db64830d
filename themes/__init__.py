"""portside's themes (Textual Theme API) and the stylesheet they share.

``THEMES`` maps each theme's name to its ``Theme``; ``resolve_theme_name`` turns what a
user typed (``--theme light``, ``theme = "high-contrast"`` or any Textual theme name) into
a registered name, or raises ``UnknownTheme`` with the list of choices.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.theme import BUILTIN_THEMES, Theme

from themes.colorblind import THEME as COLORBLIND
from themes.dark import THEME as DARK
from themes.high_contrast import THEME as HIGH_CONTRAST
from themes.light import THEME as LIGHT

THEMES: dict[str, Theme] = {theme.name: theme for theme in (DARK, LIGHT, HIGH_CONTRAST, COLORBLIND)}
ALIASES: dict[str, str] = {
    "dark": DARK.name,
    "light": LIGHT.name,
    "high-contrast": HIGH_CONTRAST.name,
    "contrast": HIGH_CONTRAST.name,
    "colorblind": COLORBLIND.name,
    "colourblind": COLORBLIND.name,
    "colorblind-safe": COLORBLIND.name,
}
DEFAULT_THEME = DARK.name
NO_COLOR_THEME = HIGH_CONTRAST.name
STYLESHEET = Path(__file__).with_name("portside.tcss")


class UnknownTheme(ValueError):
    """A theme name that is neither portside's nor Textual's."""


def resolve_theme_name(name: str, extra: Iterable[str] = ()) -> str:
    """The registered theme name for ``name`` (a short alias, a full name or a Textual theme)."""
    wanted = name.strip().lower().replace("_", "-")
    if wanted in ALIASES:
        return ALIASES[wanted]
    if wanted in THEMES or wanted in BUILTIN_THEMES or wanted in set(extra):
        return wanted
    choices = "dark, light, high-contrast, colorblind"
    raise UnknownTheme(
        f"unknown theme {name!r}: choose one of {choices} (or a Textual theme such as nord)"
    )


def cycle_order() -> list[str]:
    """The themes the in-app "next theme" key steps through, in order."""
    return list(THEMES)
