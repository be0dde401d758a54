"""Frame files in folders, zip and tar archives: listed, read and written.

Data-versioning tools are slow on hundreds of thousands of small PNGs, so raw
datasets travel as one archive. Reading must not unpack it to disk and must
stay close to the PNG decoder's speed, so members of a zip or an uncompressed
tar are located once (name -> byte range) and then sliced out of a memory map
by each worker. A compressed tar cannot be read at random; it is streamed.

Every member is read whole into memory, so a member that declares more than
:data:`MAX_MEMBER_BYTES` is refused unread, and a compressed one is never
inflated past the size it declares: a decompression bomb costs no memory.

Writers are atomic: they write ``<target>.tmp-<pid>`` and rename it into place
when closed, so an interrupted run never leaves an archive that looks complete.
"""

from __future__ import annotations

import io
import lzma
import mmap
import os
import shutil
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gaitflow.errors import GaitflowError

# A member's location: (path inside the source, locator). The locator is what a
# worker needs to read the bytes without re-listing the source.
#   folder: absolute file path
#   zip:    (header_offset, compress_size, compress_type, file_size)
#   tar:    (data_offset, size)
Member = tuple[str, object]

# The most a member may declare (a frame is kilobytes, a pickled sequence megabytes): read whole
# into memory, a bigger one is refused unread.
MAX_MEMBER_BYTES = 1 << 28
# What reading a damaged compressed tar raises besides tarfile's own errors.
_STREAM_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)

_ZIP_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def source_kind(path: Path) -> str:
    """folder, zip, tar (uncompressed) or tar-stream (compressed tar)."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise GaitflowError(f"{path}: not found; expected a folder or a .zip/.tar/.tar.gz archive of silhouette PNGs")
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        with tarfile.open(path, "r:") as _:
            return "tar"
    except tarfile.ReadError:
        pass
    try:
        with tarfile.open(path, "r:*") as _:
            return "tar-stream"
    except _STREAM_ERRORS:
        raise GaitflowError(f"{path}: not a readable folder, zip or tar archive") from None


def list_members(path: Path, kind: str, suffix: str) -> list[Member]:
    """Every file ending in `suffix` with its locator, in a stable (sorted) order."""
    members: list[Member] = []
    if kind == "folder":
        root = path.resolve()
        for dirpath, _, files in os.walk(root):
            for f in files:
                if f.lower().endswith(suffix):
                    full = os.path.join(dirpath, f)
                    members.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    elif kind == "zip":
        try:
            entries = _zip_central_directory(path)
        except (ValueError, struct.error):
            entries = None  # anything unusual: let zipfile parse it
        try:
            if entries is None:
                with zipfile.ZipFile(path) as zf:
                    entries = [
                        (i.filename, (i.header_offset, i.compress_size, i.compress_type, i.file_size))
                        for i in zf.infolist()
                        if not i.is_dir()
                    ]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            # a damaged central directory: bad offsets, names that are not UTF-8, unknown features
            raise GaitflowError(f"{path}: cannot list the zip archive ({exc})") from None
        members = [e for e in entries if e[0].lower().endswith(suffix)]
    elif kind == "tar":
        try:
            with tarfile.open(path, "r:") as tf:
                for info in tf:
                    if info.isfile() and info.name.lower().endswith(suffix):
                        members.append((info.name, (info.offset_data, info.size)))
        except (tarfile.TarError, OSError) as exc:
            raise GaitflowError(f"{path}: cannot list the tar archive ({exc})") from None
    else:
        raise ValueError(kind)
    members.sort(key=lambda m: m[0])
    return members


_CD_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _zip64_extra(cd: bytes, pos: int, nlen: int, xlen: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset moved to the zip64 extra field (id 1), in its fixed order."""
    usize = struct.unpack_from("<L", cd, pos + 24)[0]
    extra = cd[pos + 46 + nlen : pos + 46 + nlen + xlen]
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<2H", extra, i)
        if tag == 1:
            values = list(struct.unpack_from(f"<{size // 8}Q", extra, i + 4))
            if usize == 0xFFFFFFFF:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF:
                offset = values.pop(0)
            return csize, offset, usize
        i += 4 + size
    raise ValueError("zip64 extra field missing")


def _zip_central_directory(path: Path) -> list[Member]:
    """(name, (header offset, compressed size, method, size)) of every file in a zip, read straight
    from the central directory: several times faster than zipfile on archives of a million
    frames. Raises ValueError for what it does not handle (zip64, encryption), so the caller
    can fall back to zipfile."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail_len = min(size, 65536 + _EOCD.size)
        f.seek(size - tail_len)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0:
            raise ValueError("no end of central directory")
        _, disk, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
        if disk:
            raise ValueError("multi-disk archive")
        if count == 0xFFFF or cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
            loc = at - _ZIP64_LOCATOR.size
            sig, _, eocd64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, loc)
            if sig != b"PK\x06\x07":
                raise ValueError("zip64 locator missing")
            f.seek(eocd64_offset)
            sig, _, _, _, _, _, _, count, cd_size, cd_offset = _ZIP64_EOCD.unpack(f.read(_ZIP64_EOCD.size))
            if sig != b"PK\x06\x06":
                raise ValueError("zip64 end record missing")
        f.seek(cd_offset)
        cd = f.read(cd_size)
    out: list[Member] = []
    pos = 0
    unpack = _CD_ENTRY.unpack_from
    for _ in range(count):
        (sig, _, _, _, _, flags, method, _, _, _, csize, usize, nlen, xlen, clen, _, _, _, offset) = unpack(cd, pos)
        if sig != b"PK\x01\x02" or flags & 1:
            raise ValueError("unexpected or encrypted central directory entry")
        raw = cd[pos + 46 : pos + 46 + nlen]
        if csize == 0xFFFFFFFF or offset == 0xFFFFFFFF or usize == 0xFFFFFFFF:
            csize, offset, usize = _zip64_extra(cd, pos, nlen, xlen, csize, offset)
        name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        if not name.endswith("/"):
            out.append((name, (offset, csize, method, usize)))
        pos += 46 + nlen + xlen + clen
    return out


class RandomAccessReader:
    """Reads members of a folder, zip or uncompressed tar by locator (one per worker process)."""

    def __init__(self, path: Path, kind: str):
        self.kind = kind
        self.path = Path(path)
        self._file = None
        self._map = None
        if kind in ("zip", "tar"):
            self._file = open(self.path, "rb")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)

    def read(self, locator) -> bytes | memoryview:
        """The member's bytes; raises OSError or ValueError when they cannot be had (damaged, or
        declaring more than MAX_MEMBER_BYTES)."""
        if self.kind == "folder":
            return read_file(locator)
        mm = self._map
        if self.kind == "tar":
            start, size = locator
            _check_size(size)
            if start + size > len(mm):
                raise ValueError("member runs past the end of the archive")
            return memoryview(mm)[start : start + size]
        offset, csize, ctype, usize = locator
        _check_size(max(csize, usize))
        try:
            head = _ZIP_LOCAL_HEADER.unpack_from(mm, offset)
        except struct.error:
            raise ValueError("zip local header past the end of the archive") from None
        if head[0] != b"PK\x03\x04":
            raise ValueError("bad zip local header")
        start = offset + _ZIP_LOCAL_HEADER.size + head[9] + head[10]
        if start + csize > len(mm):
            raise ValueError("member runs past the end of the archive")
        raw = memoryview(mm)[start : start + csize]
        if ctype == zipfile.ZIP_STORED:
            return raw
        if ctype == zipfile.ZIP_DEFLATED:
            inflate = zlib.decompressobj(-15)
            try:
                data = inflate.decompress(raw, usize + 1)  # never past the declared size
            except zlib.error as exc:
                raise ValueError(f"damaged deflate data ({exc})") from None
            if len(data) != usize or not inflate.eof:
                raise ValueError(f"inflates to other than its declared {usize} bytes")
            return data
        raise ValueError(f"zip compression method {ctype} is not supported; store or deflate the members")

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._file.close()
            self._map = self._file = None


def _check_size(size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ValueError(f"declares {size} bytes, more than the {MAX_MEMBER_BYTES} a member may hold; not read")


def read_file(path) -> bytes:
    """A file's bytes, refused (ValueError) when it holds more than MAX_MEMBER_BYTES."""
    with open(path, "rb") as f:
        _check_size(os.fstat(f.fileno()).st_size)
        return f.read(MAX_MEMBER_BYTES + 1)


def list_stream_names(path: Path) -> list[Member]:
    """Names of the files in a compressed tar (one decompression pass, no locators)."""
    try:
        with tarfile.open(path, "r:*") as tf:
            return sorted((info.name, None) for info in tf if info.isfile())
    except _STREAM_ERRORS as exc:
        raise GaitflowError(f"{path}: the compressed tar archive is unreadable ({exc})") from None


def stream_tar(path: Path, suffix: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each matching member of a compressed tar, in archive order. A member that
    declares more than MAX_MEMBER_BYTES is not read: its bytes are empty (an unreadable file)."""
    try:
        with tarfile.open(path, "r:*") as tf:
            for info in tf:
                if info.isfile() and info.name.lower().endswith(suffix):
                    f = tf.extractfile(info) if info.size <= MAX_MEMBER_BYTES else None
                    yield info.name, f.read() if f else b""
    except _STREAM_ERRORS as exc:
        raise GaitflowError(f"{path}: the compressed tar archive is unreadable ({exc})") from None


# ---------------------------------------------------------------- writers


@dataclass
class ArchiveWriter:
    """Writes files into a zip, a tar or a folder, atomically and reproducibly.

    Reproducible: fixed timestamps, owners and order, so the same frames give
    byte-identical archives. Members are stored uncompressed because PNGs are
    already compressed and stored members are read by slicing the file.
    """

    target: Path
    kind: str  # zip | tar | folder

    def __post_init__(self):
        self.target = Path(self.target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.with_name(f"{self.target.name}.tmp-{os.getpid()}")
        if self.kind == "zip":
            self._zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        elif self.kind == "tar":
            self._tar = tarfile.open(self.tmp, "w", format=tarfile.PAX_FORMAT)
        elif self.kind == "folder":
            self.tmp.mkdir(parents=True)
        else:
            raise GaitflowError(f"archive kind {self.kind!r}: expected zip, tar or folder")

    def add(self, name: str, data: bytes) -> None:
        if self.kind == "zip":
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            self._zip.writestr(info, data)
        elif self.kind == "tar":
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            self._tar.addfile(info, io.BytesIO(data))
        else:
            dest = self.tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)

    def close(self) -> None:
        """Finish the archive and move it into place, replacing an older one."""
        if self.kind == "zip":
            self._zip.close()
        elif self.kind == "tar":
            self._tar.close()
        replace_path(self.tmp, self.target)

    def abort(self) -> None:
        """Drop the half-written archive."""
        try:
            if self.kind == "zip":
                self._zip.close()
            elif self.kind == "tar":
                self._tar.close()
        finally:
            remove_path(self.tmp)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace_path(src: Path, dest: Path) -> None:
    """Move src onto dest; a folder replaces a folder (the old one is removed after the move)."""
    if src.is_dir() and dest.exists():
        old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        remove_path(old)
    else:
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(src, dest)
