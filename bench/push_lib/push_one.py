"""Push one local image of an engine root with the engine's Pusher, then exit.

``python bench/push_lib/push_one.py push ROOT SOURCE DEST`` opens the engine at ROOT
(loopback registries are insecure by default), resolves SOURCE (a tag held there) and
pushes it as DEST; it prints the final status line. ``push_one.py pull ROOT REF`` pulls REF
into ROOT first (the untimed preparation). This stands in for ``portside push`` until the
command line has that verb, and runs in its own process so startup is part of the time.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.config import load_config  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.errors import PortsideError  # noqa: E402
from engine.progress import ProgressEvent  # noqa: E402
from engine.registry.push import Pusher  # noqa: E402


async def push(root: Path, source: str, dest: str) -> str:
    engine = await Engine.open(load_config(Path("/nonexistent"), root=root))
    try:
        pusher = Pusher(
            registry=engine.registry,
            content=engine.content,
            metadata=engine.metadata,
            state_dir=root / "push-uploads",
        )
        image_id = await engine.images.resolve(source)
        last: list[ProgressEvent] = []
        await pusher.push(dest, image_id, progress=last.append)
        return last[-1].status
    finally:
        await engine.close()


async def pull(root: Path, ref: str) -> str:
    engine = await Engine.open(load_config(Path("/nonexistent"), root=root))
    try:
        return await engine.images.pull(ref)
    finally:
        await engine.close()


def main() -> int:
    args = sys.argv[1:]
    try:
        if len(args) == 4 and args[0] == "push":
            print(asyncio.run(push(Path(args[1]), args[2], args[3])))
        elif len(args) == 3 and args[0] == "pull":
            print(asyncio.run(pull(Path(args[1]), args[2])))
        else:
            print("usage: push_one.py push ROOT SOURCE DEST | pull ROOT REF", file=sys.stderr)
            return 2
    except PortsideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 125
    return 0


if __name__ == "__main__":
    sys.exit(main())
