"""Making a new layer from a tar writer, as commit and the builder do.

``store_layer`` streams the tar through gzip (level 1: fast) into a temporary file while
hashing both forms (the DiffID of the tar, the digest of the blob), ingests the blob into the
content store, applies it as a snapshot on top of its parents' chain and records the layer
row. The caller holds whatever GC lease it needs around this and the image record that
follows.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.digest import Digest, chain_ids
from engine.oci import OCI_LAYER_GZIP
from engine.store.metadata import LayerRow

if TYPE_CHECKING:
    from engine.images import ImageService

_CHUNK = 1 << 20
# level 1: a layer made here is read back at once and rarely pushed; the higher levels
# cost several times the CPU for a few percent less (docker's legacy builder does not
# compress at all until a push)
GZIP_LEVEL = 1


class HashingGzip:
    """A write-only file: hashes what it is given (DiffID) and writes it gzip-compressed to
    ``out`` while hashing that too (blob digest)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.size = 0
        self.z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self.diff.update(data)
        self._emit(self.z.compress(data))
        return len(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.size += len(data)
            self.out.write(data)

    def close(self) -> None:
        self._emit(self.z.flush())

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class NewLayer:
    diff_id: Digest
    blob: Digest
    blob_size: int
    size: int  # unpacked, as the snapshot measured it

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_LAYER_GZIP, "digest": str(self.blob), "size": self.blob_size}


async def store_layer(
    images: ImageService,
    parent_diff_ids: Sequence[str],
    write_tar: Callable[[BinaryIO], None],
    workdir: Path,
) -> NewLayer:
    """Compress, store, apply and record the layer ``write_tar`` writes (blocking, so it runs
    in a thread) on top of the layers ``parent_diff_ids``."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix="layer-", dir=workdir)
    tmp = Path(name)
    try:

        def build() -> HashingGzip:
            with open(fd, "wb") as fh:
                hz = HashingGzip(fh)
                write_tar(hz)  # type: ignore[arg-type]
                hz.close()  # no fsync: this copy is only read back into the content store
            return hz

        hz = await asyncio.to_thread(build)
        diff_id = Digest.parse("sha256:" + hz.diff.hexdigest())
        blob = Digest.parse("sha256:" + hz.blob.hexdigest())
        async with images.content.writer(blob, hz.size) as writer:
            if writer is not None:  # None: the store has this blob already
                with open(tmp, "rb") as fh:
                    while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                        await writer.write(chunk)
                await writer.commit()
    finally:
        await asyncio.to_thread(lambda: tmp.unlink(missing_ok=True))
    chains = chain_ids([Digest.parse(d) for d in [*parent_diff_ids, str(diff_id)]])
    parent_chain = chains[-2] if len(chains) > 1 else None
    result = await images.snapshots.apply(
        chains[-1], parent_chain, images.content.path(blob), diff_id
    )
    await images.metadata.run(
        images.metadata.put_layer,
        LayerRow(
            chain_id=str(chains[-1]),
            diff_id=str(diff_id),
            parent=str(parent_chain) if parent_chain else None,
            blob_digest=str(blob),
            media_type=OCI_LAYER_GZIP,
            blob_size=hz.size,
            size=result.size,
        ),
    )
    return NewLayer(diff_id, blob, hz.size, result.size)
