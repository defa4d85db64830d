"""portside-light: dark ink on near-white, contrast ratios above 4.5:1 for body text."""

from __future__ import annotations

from textual.theme import Theme

THEME = Theme(
    name="portside-light",
    primary="#0B62C4",
    secondary="#6A4FC9",
    accent="#B4560E",
    warning="#8A5A00",
    error="#C62F3A",
    success="#23772B",
    foreground="#1F2328",
    background="#FAFBFC",
    surface="#F1F3F6",
    panel="#E1E6EC",
    dark=False,
)
