"""The two images ``bench/pull`` pulls, built once and cached as OCI layouts.

- ``minbase``: one gzip layer holding a Debian bookworm ``debootstrap --variant=minbase`` root
  (plus perl, to pass 200 MB unpacked), fetched through the mirror apt is configured with. When
  debootstrap cannot run, a >= 200 MB, ~10k-file slice of the host's /usr stands in.
- ``layers6``: six gzip layers, ~260 MB unpacked, > 3000 small files, generated from a fixed
  seed: "binaries" (half-compressible), text trees of small files, incompressible assets,
  symlinks, hardlinks and a final layer that whites out some lower files.

A layout is complete when its ``bench-complete`` marker holds the current ``RECIPE`` version.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures import layers as L  # noqa: E402
from tests.fixtures.images import host_arch  # noqa: E402
from tests.fixtures.oci import OCI_LAYER_GZIP, Layer, OciLayout  # noqa: E402

RECIPE = "3"
MARKER = "bench-complete"
TAG = "1"
MIN_MINBASE_BYTES = 200 * 10**6
GZIP_LEVEL = 6


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def layer_from_dir(layout: OciLayout, src: Path, *, paths: list[Path] | None = None) -> Layer:
    """Stream ``src`` (or just ``paths`` under it) as a gzip tar layer into ``layout``."""
    tmp = layout.blobs / "layer.partial"
    with tmp.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:  # type: ignore[arg-type]
            plain = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
                if paths is None:
                    for entry in sorted(src.iterdir()):
                        tar.add(entry, arcname=entry.name, recursive=True)
                else:
                    for path in paths:
                        tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
    desc = layout.adopt_blob(tmp, "sha256:" + compressed.sha.hexdigest(), OCI_LAYER_GZIP)
    return Layer(desc, "sha256:" + plain.sha.hexdigest())


def _config(layers: int, cmd: list[str]) -> dict[str, object]:
    return {
        "architecture": host_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
        },
        "history": [{"created_by": f"bench layer {i + 1}"} for i in range(layers)],
    }


def _finish(layout: OciLayout, layers: list[Layer], cmd: list[str]) -> None:
    manifest, _ = layout.add_image(layers, _config(len(layers), cmd))
    layout.tag(manifest, TAG)
    (layout.root / MARKER).write_text(RECIPE)


def _is_complete(root: Path) -> bool:
    marker = root / MARKER
    return marker.is_file() and marker.read_text() == RECIPE


def _apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources)."""
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources"))
    for path in [*sources, Path("/etc/apt/sources.list")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            uri = match.group(1)
            if "security" not in uri and "/debian" in uri:
                return uri
    return "http://deb.debian.org/debian"


def _tree_bytes(root: Path) -> tuple[int, int]:
    total = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_size
            files += 1
    return total, files


def _debootstrap(target: Path) -> bool:
    if shutil.which("debootstrap") is None:
        log("debootstrap not installed (apt-get install debootstrap); using host /usr instead")
        return False
    if target.exists():
        shutil.rmtree(target)
    mirror = _apt_mirror()
    log(f"debootstrap --variant=minbase bookworm from {mirror} (about 30-60 s)")
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=perl", "bookworm", str(target), mirror],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-5:])
        log(f"debootstrap failed ({result.returncode}); using host /usr instead:\n{tail}")
        return False
    return True


def _host_usr_slice(limit_bytes: int = 210 * 10**6) -> list[Path]:
    """Regular files, symlinks and their dirs from /usr until ``limit_bytes`` are gathered."""
    picked: list[Path] = []
    total = 0
    for dirpath, dirs, names in os.walk("/usr"):
        dirs.sort()
        picked.append(Path(dirpath))
        for name in sorted(names):
            path = Path(dirpath) / name
            st = path.lstat()
            picked.append(path)
            total += st.st_size
        if total >= limit_bytes:
            break
    return picked


def build_minbase(cache: Path) -> Path:
    root = cache / "images" / "minbase"
    if _is_complete(root):
        return root
    if root.exists():
        shutil.rmtree(root)
    layout = OciLayout(root)
    rootfs = cache / "rootfs-minbase"
    try:
        if _debootstrap(rootfs):
            size, files = _tree_bytes(rootfs)
            log(f"minbase root: {size / 1e6:.0f} MB in {files} files; writing the layer")
            layer = layer_from_dir(layout, rootfs)
        else:
            paths = _host_usr_slice()
            log(f"host /usr slice: {len(paths)} entries; writing the layer")
            layer = layer_from_dir(layout, Path("/"), paths=paths)
    finally:
        if rootfs.exists():
            subprocess.run(["umount", "-R", str(rootfs / "proc")], capture_output=True, check=False)
            shutil.rmtree(rootfs, ignore_errors=True)
    _finish(layout, [layer], ["bash"])
    return root


# -- layers6: generated content ----------------------------------------------------------

_WORD_TEXT = (
    "the of and to in is for on that with as by at from this be are or an it not which have "
    "config value default error return function module package install build version data "
    "file path system user service network server client request response status header "
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt"
)
_WORDS = _WORD_TEXT.split()


def _text(rng: random.Random, size: int) -> bytes:
    words = rng.choices(_WORDS, k=size // 5 + 1)
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\n".join(lines).encode()[:size]


def _binary(rng: random.Random, size: int) -> bytes:
    """Roughly 2.5:1 gzip-compressible, like executables and shared libraries."""
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(1024)
        out += bytes(rng.randrange(4) for _ in range(64)) * 24
    return bytes(out[:size])


def _layers6_items(seed: int = 20240601) -> list[list[L.Item]]:
    rng = random.Random(seed)
    layers: list[list[L.Item]] = []
    # 1: ~90 MB of "binaries" and libraries
    items = [L.directory("opt"), L.directory("opt/app"), L.directory("opt/app/lib")]
    items += [L.directory("opt/app/bin")]
    for i in range(30):
        items.append(L.file(f"opt/app/lib/lib{i:02d}.so", _binary(rng, 3 * 10**6), 0o755))
    for i in range(40):
        items.append(L.file(f"opt/app/bin/tool{i:02d}", _binary(rng, 10**5), 0o755))
    layers.append(items)
    # 2: ~50 MB: 1500 text files of 2-60 kB in nested dirs
    items = [L.directory("usr"), L.directory("usr/share"), L.directory("usr/share/doc")]
    for d in range(50):
        items.append(L.directory(f"usr/share/doc/pkg{d:02d}"))
        for f in range(30):
            size = rng.randrange(2_000, 60_000)
            items.append(L.file(f"usr/share/doc/pkg{d:02d}/file{f:02d}.txt", _text(rng, size)))
    layers.append(items)
    # 3: ~40 MB of incompressible assets
    items = [L.directory("srv"), L.directory("srv/assets")]
    for i in range(10):
        items.append(L.file(f"srv/assets/blob{i}.bin", rng.randbytes(4 * 10**6)))
    layers.append(items)
    # 4: ~40 MB: 2000 small files (1-8 kB) and a few large text files
    items = [L.directory("usr"), L.directory("usr/lib"), L.directory("usr/lib/site")]
    for d in range(100):
        items.append(L.directory(f"usr/lib/site/mod{d:03d}"))
        for f in range(20):
            size = rng.randrange(1_000, 8_000)
            items.append(L.file(f"usr/lib/site/mod{d:03d}/m{f:02d}.py", _text(rng, size)))
    items.append(L.directory("var"))
    items.append(L.directory("var/log"))
    for i in range(6):
        items.append(L.file(f"var/log/big{i}.log", _text(rng, 5 * 10**6)))
    layers.append(items)
    # 5: ~30 MB mixed: binaries, symlinks, hardlinks
    items = [L.directory("opt"), L.directory("opt/extra")]
    for i in range(20):
        items.append(L.file(f"opt/extra/x{i:02d}", _binary(rng, 1_400_000), 0o755))
        items.append(L.symlink(f"opt/extra/x{i:02d}.link", f"x{i:02d}"))
    for i in range(20):
        items.append(L.hardlink(f"opt/extra/x{i:02d}.hard", f"opt/extra/x{i:02d}", 0o755))
    layers.append(items)
    # 6: ~10 MB of config-like files and whiteouts of lower files
    items = [L.directory("etc"), L.directory("etc/app")]
    for i in range(500):
        items.append(L.file(f"etc/app/c{i:03d}.conf", _text(rng, rng.randrange(5_000, 35_000))))
    items += [L.directory("srv"), L.directory("srv/assets"), L.whiteout("srv/assets/blob9.bin")]
    items += [L.directory("usr"), L.directory("usr/share"), L.directory("usr/share/doc")]
    items.append(L.whiteout("usr/share/doc/pkg49"))
    layers.append(items)
    return layers


def build_layers6(cache: Path) -> Path:
    root = cache / "images" / "layers6"
    if _is_complete(root):
        return root
    if root.exists():
        shutil.rmtree(root)
    layout = OciLayout(root)
    layers = []
    for n, items in enumerate(_layers6_items(), start=1):
        tar = L.layer_tar(items)
        log(f"layers6: layer {n}: {len(tar) / 1e6:.0f} MB tar, {len(items)} entries")
        layers.append(
            layout.add_layer(tar, gzip.compress(tar, GZIP_LEVEL, mtime=0), OCI_LAYER_GZIP)
        )
    _finish(layout, layers, ["sh"])
    return root


BUILDERS = {"minbase": build_minbase, "layers6": build_layers6}
