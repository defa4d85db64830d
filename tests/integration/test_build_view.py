"""``engine.build.view.image_view``: the builder's read-only view of an image, mounted with
mount(2) itself, shows what ``merged_view`` (the ``mount`` binary) shows, goes away on
exit, and falls back to ``merged_view`` when the options would not fit in a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.build import view
from engine.build.view import image_view
from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.store.snapshots import merged_view
from tests.fixtures.trees import tree_of_dir


def _mounted(path: Path) -> bool:
    text = Path("/proc/self/mountinfo").read_text()
    return any(line.split()[4] == str(path) for line in text.splitlines())


async def _chain(engine: Engine, ref: str) -> Digest:
    image_id = await engine.images.pull(ref)
    cfg = await engine.images.config(image_id)
    return chain_ids([Digest.parse(d) for d in cfg["rootfs"]["diff_ids"]])[-1]


async def test_view_shows_the_image_like_merged_view(
    engine: Engine, pushed_images: dict[str, str]
) -> None:
    snap = engine.images.snapshots
    for ref in ("test/busybox:1", "test/busybox2:1"):  # one layer, then several
        chain = await _chain(engine, pushed_images[ref])
        async with merged_view(snap, chain) as expected_root:
            expected = tree_of_dir(expected_root)
        async with image_view(snap, chain) as root:
            assert _mounted(root)
            assert tree_of_dir(root) == expected
            with pytest.raises(OSError):
                (root / "probe").write_text("read-only")
        assert not root.exists()  # unmounted and removed


async def test_long_options_fall_back_to_merged_view(
    engine: Engine, pushed_images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of layers would not fit in mount(2)'s page of options: such a chain is
    mounted by ``merged_view`` (relative paths from the store's root)."""
    monkeypatch.setattr(view, "_MAX_DATA", 10)
    chain = await _chain(engine, pushed_images["test/busybox:1"])
    assert view._options(engine.images.snapshots, chain) is None
    async with image_view(engine.images.snapshots, chain) as root:
        assert (root / "bin" / "busybox").exists()
    assert not root.exists()
