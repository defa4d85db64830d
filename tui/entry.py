"""The ``portside`` console command.

Verbs go to a warm command server when one runs (tui/cmdclient.py, tui/cmdserver.py): they
then start in tens of milliseconds instead of paying the verbs' ~200 ms of imports. The
dashboard, ``serve``, ``PORTSIDE_CMDSERVER=0`` and the first verb (which starts a server for
the next ones) run in this process.

The launcher ``scripts/deps.sh`` writes into the venv runs Python with ``-S``: the thin
client needs only built-in modules, and skipping ``site`` (and the ``re`` import of pip's
generated script) saves about a third of its start. Before anything runs here, ``site`` is
then set up as a normal start would have done it.
"""

from __future__ import annotations

import os
import sys

from tui import cmdproto


def main() -> int:
    argv = sys.argv[1:]
    if cmdproto.enabled() and cmdproto.warm_eligible(argv):
        from tui import cmdclient

        code = cmdclient.run(argv)
        if code is not None:
            return _leave(code)
        cmdclient.spawn_server()
    _ensure_site()
    from tui.main import main as run_here

    return run_here(argv)


def _ensure_site() -> None:
    """Add the venv's site-packages (and run its .pth files) if Python started with -S."""
    if "site" not in sys.modules:
        import site

        site.main()


def _leave(code: int) -> int:
    """Exit with the warm worker's status, skipping the interpreter's teardown (a few ms of
    every verb): this process only relayed the command and holds nothing to clean up."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
