"""The build cache: step key -> image id, on disk under ``<root>/build-cache``.

A key is ``sha256`` over the parent image id, the expanded instruction text, the build args
the step used and, for COPY/ADD, the content hash of the sources (never mtimes). Entries are
small files written atomically (temporary file + rename), so the cache survives restarts; an
entry whose image is gone is a miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.images import ImageService


def step_key(
    parent: str | None, text: str, args: Mapping[str, str], content: str | None = None
) -> str:
    """The cache key of one step."""
    doc = json.dumps(
        [parent or "scratch", text, sorted(args.items()), content or ""], separators=(",", ":")
    )
    return hashlib.sha256(doc.encode()).hexdigest()


class BuildCache:
    """Step results of earlier builds (see the module docstring)."""

    def __init__(self, root: Path, images: ImageService) -> None:
        self.dir = root / "build-cache"
        self.images = images

    async def get(self, key: str) -> str | None:
        """The image id recorded for ``key`` if that image still exists."""
        try:
            image_id = (await asyncio.to_thread((self.dir / key).read_text)).strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        md = self.images.metadata
        if not image_id.startswith("sha256:") or await md.run(md.get_image, image_id) is None:
            return None
        return image_id

    async def put(self, key: str, image_id: str) -> None:
        await asyncio.to_thread(self._put, key, image_id)

    def _put(self, key: str, image_id: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(image_id)
            os.replace(tmp, self.dir / key)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
