"""Streaming tar reader for layer tars: strict header parsing with size caps, no extraction.

``TarReader`` walks a tar stream given as an iterator of byte chunks and yields one
``Entry`` per member: ustar/GNU/v7/star headers with checksums checked, base-256 numbers,
PAX extended headers (path, linkpath, size, uid, gid, mtime, atime, ``SCHILY.xattr.*``) and
GNU long names. Names stay bytes. Metadata records are capped (``MAX_META``), names and link
targets at ``MAX_NAME`` bytes; a NUL inside a name, sparse files or unknown entry types are
errors. File data is handed out as memoryviews of the chunks (no copies). It never touches the
filesystem: applying entries is ``engine.store.unpack``'s job.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import PortsideError

BLOCK = 512
MAX_NAME = 4096  # PATH_MAX: longer names or link targets are refused
MAX_META = 1 << 20  # PAX records / GNU long names per entry, like Go's archive/tar

REG = ord("0")
LNK = ord("1")
SYM = ord("2")
CHR = ord("3")
BLK = ord("4")
DIR = ord("5")
FIFO = ord("6")
CONT = ord("7")
_OLD_REG = 0
_PAX = ord("x")
_PAX_GLOBAL = ord("g")
_GNU_LONGNAME = ord("L")
_GNU_LONGLINK = ord("K")
_GNU_SPARSE = ord("S")
_HEADER_ONLY = frozenset((LNK, SYM, CHR, BLK, DIR, FIFO))
_ZERO_BLOCK = bytes(BLOCK)
_CHKSUM_SPACES = 8 * 32


class TarError(PortsideError):
    """The layer is not a well-formed tar stream, or carries something refused."""


class Entry:
    """One tar member as read from the stream (names are raw bytes)."""

    __slots__ = (
        "atime_ns",
        "devmajor",
        "devminor",
        "gid",
        "linkname",
        "mode",
        "mtime_ns",
        "name",
        "size",
        "type",
        "uid",
        "xattrs",
    )

    def __init__(
        self,
        name: bytes,
        type: int,
        mode: int,
        uid: int,
        gid: int,
        size: int,
        mtime_ns: int,
        linkname: bytes,
        devmajor: int,
        devminor: int,
    ) -> None:
        self.name = name
        self.type = type
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime_ns = mtime_ns
        self.atime_ns: int | None = None
        self.linkname = linkname
        self.devmajor = devmajor
        self.devminor = devminor
        self.xattrs: dict[bytes, bytes] | None = None

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, type={chr(self.type)!r}, size={self.size})"


def show(name: bytes, limit: int = 120) -> str:
    """A printable, bounded rendering of an entry name for error messages."""
    text = name[:limit].decode("utf-8", "backslashreplace")
    text = text.replace("\x00", "\\0").replace("\n", "\\n")
    return text + ("..." if len(name) > limit else "")


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU): 0x80 positive, 0xff negative
        if field[0] == 0xFF:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.strip(b" \x00")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError(f"invalid tar header: bad {what} field {text[:20]!r}") from None


def _cstring(field: bytes) -> bytes:
    end = field.find(b"\x00")
    return field if end < 0 else field[:end]


def _parse_time_ns(value: bytes) -> int:
    text = value.decode("ascii", "replace")
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise TarError(f"invalid PAX time {text[:40]!r}")
    ns = int(whole) * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
    return -ns if neg else ns


def _parse_pax(data: bytes, records: dict[bytes, bytes]) -> None:
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0:  # some writers pad the record block with NULs
            if data[pos:].strip(b"\x00"):
                raise TarError("invalid PAX header: data after NUL padding")
            return
        space = data.find(b" ", pos, min(end, pos + 24))
        if space < 0:
            raise TarError("invalid PAX header: record without a length")
        length_text = data[pos:space]
        if not length_text.isdigit():
            raise TarError("invalid PAX header: bad record length")
        length = int(length_text)
        stop = pos + length
        if length <= space - pos + 1 or stop > end or data[stop - 1] != 0x0A:
            raise TarError("invalid PAX header: record length does not match")
        key, eq, value = data[space + 1 : stop - 1].partition(b"=")
        if not eq or not key:
            raise TarError("invalid PAX header: record without key=value")
        records[key] = value
        pos = stop


class TarReader:
    """Reads tar members from an iterator of byte chunks (see the module docstring)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self._remaining = 0  # data bytes of the current entry not consumed yet
        self._padding = 0
        self.done = False

    # -- byte plumbing -------------------------------------------------------------------
    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf = chunk
                self._pos = 0
                return True
        self._buf = b""
        self._pos = 0
        return False

    def _read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only at the end of the stream."""
        pos = self._pos
        if len(self._buf) - pos >= n:
            self._pos = pos + n
            return self._buf[pos : pos + n]
        parts = [self._buf[pos:]]
        need = n - len(parts[0])
        self._pos = len(self._buf)
        while need > 0 and self._fill():
            take = min(need, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            need -= take
        return b"".join(parts)

    def _skip(self, n: int) -> None:
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise TarError("layer tar is truncated (ends inside an entry)")
                continue
            take = min(avail, n)
            self._pos += take
            n -= take

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self._read(n)
        if len(data) != n:
            raise TarError(f"layer tar is truncated (ends inside {what})")
        return data

    def data(self) -> Iterator[memoryview]:
        """The current entry's file data, as memoryviews of the stream's chunks."""
        while self._remaining > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise TarError("layer tar is truncated (ends inside file data)")
                continue
            take = min(avail, self._remaining)
            start = self._pos
            self._pos = start + take
            self._remaining -= take
            yield memoryview(self._buf)[start : start + take]

    def drain(self) -> int:
        """Consume everything after the end-of-archive marker; returns how many bytes."""
        count = len(self._buf) - self._pos
        while self._fill():
            count += len(self._buf)
        self._pos = len(self._buf)
        return count

    # -- headers -------------------------------------------------------------------------
    def next(self) -> Entry | None:
        """The next member, or None at the end of the archive."""
        if self.done:
            return None
        if self._remaining or self._padding:
            self._skip(self._remaining + self._padding)
            self._remaining = self._padding = 0
        records: dict[bytes, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        meta = 0
        while True:
            block = self._read(BLOCK)
            if len(block) < BLOCK:
                if block:
                    raise TarError("layer tar is truncated (ends inside a header)")
                if records or long_name is not None or long_link is not None:
                    raise TarError("layer tar is truncated (ends after an extended header)")
                self.done = True  # EOF on a header boundary: end without the zero blocks
                return None
            if block == _ZERO_BLOCK:
                second = self._read(BLOCK)
                if second and second != _ZERO_BLOCK:
                    raise TarError("invalid tar header: a zero block inside the archive")
                self.done = True
                return None
            typ = block[156]
            size = self._check_and_size(block)
            if typ in (_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                meta += size
                if size > MAX_META or meta > MAX_META:
                    raise TarError(
                        f"tar extended header too large ({size} bytes, limit {MAX_META})"
                    )
                data = self._read_exact(size, "an extended header")
                self._skip(-size % BLOCK)
                if typ == _PAX:
                    _parse_pax(data, records)
                elif typ == _GNU_LONGNAME:
                    long_name = self._long(data, "name")
                elif typ == _GNU_LONGLINK:
                    long_link = self._long(data, "link target")
                continue  # global PAX headers carry nothing a layer needs
            return self._entry(block, typ, size, records, long_name, long_link)

    @staticmethod
    def _long(data: bytes, what: str) -> bytes:
        value = data.rstrip(b"\x00")
        if b"\x00" in value:
            raise TarError(f"invalid entry {what} {show(value)!r}: contains a NUL byte")
        if len(value) > MAX_NAME:
            raise TarError(f"entry {what} too long ({len(value)} bytes, limit {MAX_NAME})")
        return value

    @staticmethod
    def _check_and_size(block: bytes) -> int:
        try:
            stored = _number(block[148:156], "checksum")
        except TarError:
            stored = -1
        field_sum = sum(block[148:156])
        unsigned = sum(block) - field_sum + _CHKSUM_SPACES
        if stored != unsigned:
            high = sum(1 for b in block if b >= 0x80) - sum(1 for b in block[148:156] if b >= 0x80)
            if stored != unsigned - 256 * high:
                raise TarError("invalid tar header: checksum mismatch (not a tar, or corrupt)")
        size = _number(block[124:136], "size")
        if size < 0:
            raise TarError("invalid tar header: negative size")
        return size

    def _entry(
        self,
        block: bytes,
        typ: int,
        size: int,
        records: dict[bytes, bytes],
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> Entry:
        magic = block[257:263]
        if long_name is not None:
            name = long_name
        else:
            name = _cstring(block[0:100])
            if magic == b"ustar\x00":
                prefix = block[345:476] if block[508:512] == b"tar\x00" else block[345:500]
                prefix = _cstring(prefix)
                if prefix:
                    name = prefix + b"/" + name
        linkname = long_link if long_link is not None else _cstring(block[157:257])
        if typ == _OLD_REG:
            typ = DIR if name.endswith(b"/") else REG
        elif typ == CONT:
            typ = REG
        elif typ == _GNU_SPARSE:
            raise TarError(f"entry {show(name)!r} is a sparse file: not allowed in layers")
        elif typ not in _HEADER_ONLY and typ != REG:
            raise TarError(f"entry {show(name)!r} has an unsupported tar type {chr(typ)!r}")
        mode = _number(block[100:108], "mode")
        uid = _number(block[108:116], "uid")
        gid = _number(block[116:124], "gid")
        mtime_ns = _number(block[136:148], "mtime") * 1_000_000_000
        devmajor = devminor = 0
        if typ in (CHR, BLK):
            devmajor = _number(block[329:337], "devmajor")
            devminor = _number(block[337:345], "devminor")
        entry = Entry(name, typ, mode, uid, gid, size, mtime_ns, linkname, devmajor, devminor)
        if records:
            self._apply_pax(entry, records)
        if typ in _HEADER_ONLY:
            entry.size = 0
        self._validate(entry)
        self._remaining = entry.size
        self._padding = -entry.size % BLOCK
        return entry

    @staticmethod
    def _apply_pax(entry: Entry, records: dict[bytes, bytes]) -> None:
        for key, value in records.items():
            if key == b"path":
                if b"\x00" in value:
                    raise TarError(f"invalid entry name {show(value)!r}: contains a NUL byte")
                entry.name = value
            elif key == b"linkpath":
                if b"\x00" in value:
                    raise TarError(f"invalid link target {show(value)!r}: contains a NUL byte")
                entry.linkname = value
            elif key in (b"size", b"uid", b"gid"):
                if not value.isdigit():
                    raise TarError(f"invalid PAX {key.decode()} {value[:20]!r}")
                setattr(entry, key.decode(), int(value))
            elif key == b"mtime":
                entry.mtime_ns = _parse_time_ns(value)
            elif key == b"atime":
                entry.atime_ns = _parse_time_ns(value)
            elif key.startswith(b"SCHILY.xattr."):
                xname = key[len(b"SCHILY.xattr.") :]
                if not xname or b"\x00" in xname or len(xname) > 255:
                    raise TarError(f"invalid xattr name {show(xname)!r} in PAX header")
                if entry.xattrs is None:
                    entry.xattrs = {}
                entry.xattrs[xname] = value
            elif key.startswith(b"GNU.sparse."):
                raise TarError(
                    f"entry {show(entry.name)!r} is a sparse file: not allowed in layers"
                )

    @staticmethod
    def _validate(entry: Entry) -> None:
        if not entry.name:
            raise TarError("invalid entry name: empty")
        if len(entry.name) > MAX_NAME:
            raise TarError(f"entry name too long ({len(entry.name)} bytes, limit {MAX_NAME})")
        if len(entry.linkname) > MAX_NAME:
            raise TarError(
                f"link target of {show(entry.name)!r} too long "
                f"({len(entry.linkname)} bytes, limit {MAX_NAME})"
            )
        if entry.uid < 0 or entry.gid < 0 or entry.uid >= 1 << 32 or entry.gid >= 1 << 32:
            raise TarError(f"entry {show(entry.name)!r} has an invalid uid/gid")
        if entry.size >= 1 << 62:
            raise TarError(f"entry {show(entry.name)!r} has an invalid size")
