"""Opening the dashboard on the selected engine.

A URL target (``--host``, a context, a running ``portside serve``) is handed to the
dashboard as is. The embedded engine is started by the dashboard in its own event loop
(after its first frame) on a private socket, lives as long as the dashboard, and is shut
down when it quits. Either way the dashboard can start the embedded engine later, when the
user switches to it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from tui.client import (
    LOCAL_SERVE,
    EngineOptions,
    EngineSelectionError,
    engine_config_overrides,
    resolve_target,
)


def embedded_starter(options: EngineOptions) -> Callable[[], AbstractAsyncContextManager[str]]:
    """What starts the embedded engine with the command line's settings."""

    def start() -> AbstractAsyncContextManager[str]:
        from engine.embedded import embedded_engine

        return embedded_engine(**engine_config_overrides(options))

    return start


def open_dashboard(options: EngineOptions, *, theme: str | None) -> int:
    """Run the dashboard until the user quits; returns the process exit code."""
    from tui.app import run_dashboard

    try:
        target = resolve_target(options)
    except EngineSelectionError as err:
        print(f"portside: {err}", file=sys.stderr)
        return 125
    if target.url is not None and target.name == LOCAL_SERVE:
        # The local engine already runs: "embedded" in the picker means this one, never
        # a second engine on the same root.
        return run_dashboard(
            target.url, engine_name=target.name, theme=theme, embedded_url=target.url
        )
    if target.url is not None:
        return run_dashboard(
            target.url,
            engine_name=target.name,
            theme=theme,
            embedded=embedded_starter(options),
        )
    # The embedded engine: the dashboard starts it in its own loop after the first frame
    # (its imports and start take longer than the dashboard's), and stops it on quit.
    return run_dashboard(
        None,
        engine_name="embedded",
        theme=theme,
        embedded=embedded_starter(options),
        start_embedded=True,
    )
