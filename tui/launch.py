"""Opening the dashboard on the selected engine.

A URL target (``--host``, a context, a running ``portside serve``) is handed to the
dashboard as is. The embedded engine is started in the dashboard's own event loop on a
private socket, lives as long as the dashboard, and is shut down when it quits.
"""

from __future__ import annotations

import asyncio
import sys

from tui.client import (
    EngineOptions,
    EngineSelectionError,
    engine_config_overrides,
    resolve_target,
)


def open_dashboard(options: EngineOptions, *, theme: str | None) -> int:
    """Run the dashboard until the user quits; returns the process exit code."""
    from tui.app import run_dashboard

    try:
        target = resolve_target(options)
    except EngineSelectionError as err:
        print(f"portside: {err}", file=sys.stderr)
        return 125
    if target.url is not None:
        return run_dashboard(target.url, engine_name=target.name, theme=theme)
    return asyncio.run(_embedded(options, theme))


async def _embedded(options: EngineOptions, theme: str | None) -> int:
    from engine.embedded import embedded_engine
    from tui.app import run_dashboard_async

    async with embedded_engine(**engine_config_overrides(options)) as url:
        return await run_dashboard_async(url, engine_name="embedded", theme=theme)
