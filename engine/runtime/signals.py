"""Signal names as docker accepts them: ``SIGTERM``, ``TERM``, ``term``, ``15``, ``SIGRTMIN+3``."""

from __future__ import annotations

import signal

from engine.errors import InvalidArgument


def parse_signal(value: str | int | None, default: int = signal.SIGTERM) -> int:
    """The signal number ``value`` names; ``default`` when it is empty."""
    if value is None or value == "":
        return int(default)
    if isinstance(value, int):
        num = value
    else:
        text = value.strip().upper()
        if text.isdigit():
            num = int(text)
        else:
            if not text.startswith("SIG"):
                text = "SIG" + text
            if text.startswith(("SIGRTMIN+", "SIGRTMAX-")):
                base, _, off = text[3:].partition("+" if "+" in text else "-")
                if not off.isdigit():
                    raise InvalidArgument(f"invalid signal: {value}")
                num = signal.SIGRTMIN + int(off) if base == "RTMIN" else signal.SIGRTMAX - int(off)
            else:
                try:
                    num = int(signal.Signals[text])
                except KeyError:
                    raise InvalidArgument(
                        f"invalid signal: {value}; use a name like SIGTERM or a number"
                    ) from None
    if not 0 < num <= signal.SIGRTMAX:
        raise InvalidArgument(f"invalid signal: {value}; signals go from 1 to {signal.SIGRTMAX}")
    return num


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)
