"""sqlite metadata (images, tags, refs, layers) and the event bus."""

import asyncio
import time

from engine.events import EventBus
from engine.store.metadata import ImageRow, LayerRow, Metadata

ID1 = "sha256:" + "1" * 64
ID2 = "sha256:" + "2" * 64


def _row(image_id: str) -> ImageRow:
    return ImageRow(image_id, "sha256:" + "f" * 64, "application/x", None, 10, time.time(), None)


def test_images_tags_and_refs(tmp_path):
    md = Metadata(tmp_path / "m.db")
    assert md.put_image(_row(ID1), ["sha256:" + "a" * 64], ["sha256:" + "c" * 64])
    assert not md.put_image(_row(ID1), [], [])  # idempotent
    md.put_image(_row(ID2), ["sha256:" + "b" * 64], [])
    assert md.set_tag("docker.io/library/x:1", ID1) is None
    assert md.set_tag("docker.io/library/x:1", ID2) == ID1  # moved: ID1 is now dangling
    assert md.tags_of(ID1) == [] and md.tags_of(ID2) == ["docker.io/library/x:1"]
    assert md.find_image_ids("222") == [ID2]
    assert md.find_image_ids("sha256:1") == [ID1]
    assert md.find_image_ids("") == [] and md.find_image_ids("zz") == []
    blobs, chains = md.live_refs()
    assert blobs == {"sha256:" + "a" * 64, "sha256:" + "b" * 64}
    assert chains == {"sha256:" + "c" * 64}
    md.delete_image(ID1)
    assert md.get_image(ID1) is None and md.live_refs()[1] == set()
    md.put_layer(LayerRow("sha256:" + "c" * 64, "sha256:" + "c" * 64, None, None, None, None, 5))
    assert md.get_layer("sha256:" + "c" * 64).size == 5
    md.close()


def test_metadata_shared_by_two_connections(tmp_path):
    a = Metadata(tmp_path / "m.db")
    b = Metadata(tmp_path / "m.db")
    a.put_image(_row(ID1), [], [])
    b.set_tag("h/x:1", ID1)
    assert a.tag_target("h/x:1") == ID1
    a.close()
    b.close()


def test_image_present_sees_every_connection_s_changes(tmp_path):
    """The build cache's check without a thread hop: a real read, so an image deleted by
    another engine process on the same root is seen gone at once."""
    md = Metadata(tmp_path / "m.db")
    other = Metadata(tmp_path / "m.db")
    assert md.image_present(ID1) is False
    md.put_image(_row(ID1), [], [])
    assert md.image_present(ID1) is True
    other.delete_image(ID1)
    assert md.image_present(ID1) is False
    other.put_image(_row(ID2), [], [])
    assert md.image_present(ID2) is True
    md.close()
    other.close()


async def test_metadata_runs_off_the_loop(tmp_path):
    md = Metadata(tmp_path / "m.db")
    await md.run(md.put_image, _row(ID1), [], [])
    assert [r.id for r in await md.run(md.list_images)] == [ID1]
    md.close()


async def test_event_bus_live_filters_and_replay():
    bus = EventBus()
    start = time.time()
    bus.publish("image", "pull", "busybox:1", {"name": "busybox:1"})
    got: list[dict] = []

    async def consume() -> None:
        async for event in bus.subscribe(since=start - 1, filters={"event": ["tag", "pull"]}):
            got.append(event)
            if len(got) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    bus.publish("image", "delete", "sha256:x", {})  # filtered out
    bus.publish("image", "tag", "sha256:x", {"name": "y:1"})
    await asyncio.wait_for(task, 2)
    assert [e["Action"] for e in got] == ["pull", "tag"]  # replayed once, then live
    assert got[0]["Actor"]["Attributes"]["name"] == "busybox:1"


async def test_event_bus_until_ends_stream():
    bus = EventBus()
    events = [e async for e in bus.subscribe(until=time.time() + 0.05)]
    assert events == []


def test_many_processes_open_new_databases_at_once(tmp_path):
    """WAL switch and schema creation race between processes opening fresh roots together
    (seen as "database is locked" from two concurrent pulls into a new root)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from engine.store.metadata import ImageRow, Metadata
        start = float(sys.argv[2])
        while time.time() < start:
            pass
        for n in range(25):
            md = Metadata(Path({str(tmp_path)!r}) / f"m{{n}}.db")
            image_id = "sha256:" + sys.argv[1] * 64
            row = ImageRow(image_id, "sha256:" + "f" * 64, "x", None, 1, time.time(), None)
            md.put_image(row, [], [])
            md.close()
        """
    )
    import time

    start = str(time.time() + 1.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, digit, start], stderr=subprocess.PIPE)
        for digit in "12345678"
    ]
    errors = [p.communicate()[1].decode()[-300:] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    for n in range(25):
        md = Metadata(tmp_path / f"m{n}.db")
        assert len(md.list_images()) == 8
        md.close()
