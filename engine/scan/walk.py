"""The merged file table of an image, read straight from its layer blobs (never extracted).

``walk_layers(blob_paths, wanted)`` decompresses each layer blob in order with the engine's
tar reader and applies whiteouts the way the image spec says (``.wh.NAME`` and
``.wh..wh..opq`` hide lower layers only), so ``files`` is what a container would see. The
contents of files ``wanted(path)`` selects are kept (latest version, capped in size). Every
regular file of at most ``KEY_SCAN_LIMIT`` bytes is also searched for private-key armour, in
every layer, because a key deleted by a later layer is still inside the earlier blob.
Blocking and CPU-heavy: run it in a thread.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.store.compression import decompress_stream
from engine.store.tarstream import DIR, LNK, REG, TarReader

KEY_SCAN_LIMIT = 1 << 20  # files larger than this are not searched for private keys
CONTENT_LIMIT = 16 << 20  # cap of a kept file (a dpkg status is a few MB at most)
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_KEY_RE = re.compile(rb"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----")


@dataclass
class FileInfo:
    """One path of the merged view: its last state and the layer that wrote it."""

    path: str  # relative to /, no leading slash
    type: int  # tarstream type (REG, DIR, SYM, ...)
    mode: int
    uid: int
    gid: int
    size: int
    layer: int
    link: str = ""


@dataclass(frozen=True)
class KeyHit:
    """Private-key armour found in a file of one layer."""

    path: str
    layer: int
    kind: str  # "RSA", "OPENSSH", "EC", "" (PKCS#8) ...


@dataclass
class ImageFiles:
    """What ``walk_layers`` found."""

    files: dict[str, FileInfo] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    keys: list[KeyHit] = field(default_factory=list)
    layers: int = 0


def _normal(name: bytes) -> str:
    text = name.decode("utf-8", "surrogateescape")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _hide(out: ImageFiles, prefix: str, layer: int, *, itself: bool) -> None:
    """Remove lower-layer entries under ``prefix`` (and ``prefix`` itself when asked)."""
    under = prefix + "/" if prefix else ""
    for path in [p for p in out.files if p.startswith(under) or (itself and p == prefix)]:
        if out.files[path].layer < layer:
            del out.files[path]
            out.contents.pop(path, None)


def walk_layers(blob_paths: list[Path], wanted: Callable[[str], bool]) -> ImageFiles:
    """The merged view of the layers at ``blob_paths`` (base first)."""
    out = ImageFiles(layers=len(blob_paths))
    for index, path in enumerate(blob_paths):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _, chunks = decompress_stream(fd)
            reader = TarReader(chunks)
            while (entry := reader.next()) is not None:
                name = _normal(entry.name)
                if not name:
                    continue
                parent, _, base = name.rpartition("/")
                if base == _OPAQUE:
                    _hide(out, parent, index, itself=False)
                    continue
                if base.startswith(_WHITEOUT):
                    hidden = f"{parent}/{base[len(_WHITEOUT) :]}" if parent else base[4:]
                    _hide(out, hidden, index, itself=True)
                    continue
                kind = entry.type
                size = entry.size if kind == REG else 0
                link = ""
                if kind == LNK:  # a hardlink shares its target's data and mode
                    link = _normal(entry.linkname)
                    target = out.files.get(link)
                    size = target.size if target is not None else 0
                elif entry.linkname:
                    link = entry.linkname.decode("utf-8", "surrogateescape")
                previous = out.files.get(name)
                if kind != DIR and previous is not None and previous.type == DIR:
                    _hide(out, name, index + 1, itself=False)  # its children go with it
                out.files[name] = FileInfo(
                    name, kind, entry.mode & 0o7777, entry.uid, entry.gid, size, index, link
                )
                out.contents.pop(name, None)
                if kind == LNK and link in out.contents:
                    out.contents[name] = out.contents[link]
                if kind != REG:
                    continue
                keep = wanted(name) and entry.size <= CONTENT_LIMIT
                scan = entry.size <= KEY_SCAN_LIMIT
                if not (keep or scan):
                    continue
                data = b"".join(bytes(part) for part in reader.data())
                if keep:
                    out.contents[name] = data
                if scan:
                    match = _KEY_RE.search(data)
                    if match is not None:
                        kind_name = match.group(1).decode().strip()
                        out.keys.append(KeyHit(name, index, kind_name))
        finally:
            os.close(fd)
    return out
