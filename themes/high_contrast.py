"""portside-high-contrast: black and white with saturated accents; the NO_COLOR default."""

from __future__ import annotations

from textual.theme import Theme

THEME = Theme(
    name="portside-high-contrast",
    primary="#FFD700",
    secondary="#00E5FF",
    accent="#FF6EFF",
    warning="#FFFF00",
    error="#FF5C5C",
    success="#3DFF6E",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1C1C1C",
    dark=True,
    text_alpha=1.0,
    variables={
        "block-cursor-background": "#FFD700",
        "block-cursor-foreground": "#000000",
        "block-cursor-text-style": "bold",
        "footer-key-foreground": "#FFD700",
        "border": "#FFFFFF",
        "text-muted": "#D0D0D0",
    },
)
