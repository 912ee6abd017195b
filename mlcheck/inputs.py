"""How inputs are read: regular files only, each kind within a size limit.

Every file mlcheck reads (policies and their bases, datasets, reference profiles,
records and reports, keys, the artifacts `verify` re-hashes) goes through here, so a
FIFO, a device or a directory is refused before it can block a read, and a file far
larger than its kind ever is (a 24 MB policy, a gzip bomb, an endless embedded record)
is refused with the limit it hit and the variable that raises it. The counterpart of
`outputs.py`.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlcheck.errors import InputError, display_path


@dataclass(frozen=True)
class Limit:
    """A cap on how much of one kind of input is read, and the variable that sets it."""

    env: str
    default: int
    unit: str  # "bytes" or "rows"
    applies_to: str

    def value(self) -> int:
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            value = 0
        if value <= 0:
            raise InputError(f"{self.env} must be a positive whole number of {self.unit}, "
                             f"not {raw!r}")
        return value

    def exceeded(self, what: str, amount: str) -> InputError:
        """The error for an input over this limit: which limit, and how to raise it."""
        return InputError(f"{what} {amount}: the limit for {self.applies_to} is "
                          f"{self.value():,} {self.unit}; if it is genuine, raise it with "
                          f"{self.env}=<{self.unit}>")


MiB = 1 << 20
POLICY = Limit("MLCHECK_MAX_POLICY_BYTES", MiB, "bytes", "policy files")
DATASET = Limit("MLCHECK_MAX_DATASET_BYTES", 16 * 1024 * MiB, "bytes",
                "datasets (decompressed, for .csv.gz and Parquet)")
DATASET_ROWS = Limit("MLCHECK_MAX_DATASET_ROWS", 500_000_000, "rows", "datasets")
# a gzip'd CSV expands 3-20x; a bomb 1000x: past this ratio (and 256 MiB) it is refused
GZIP_RATIO = Limit("MLCHECK_MAX_GZIP_RATIO", 100, "times its compressed size",
                   "gzip'd datasets")
GZIP_FLOOR = 256 * MiB
RECORD = Limit("MLCHECK_MAX_RECORD_BYTES", 100 * MiB, "bytes",
               "records, reports and reference profiles")
# what a Spark dataset's scoring sends the driver: one row per distinct combination of
# target, labels, grid scores and slice or sensitive values (a per-row id would be rows)
SPARK_CELLS = Limit("MLCHECK_MAX_SPARK_CELLS", 5_000_000, "rows",
                    "the counts a Spark dataset's scoring returns")
MODEL = Limit("MLCHECK_MAX_MODEL_BYTES", 4 * 1024 * MiB, "bytes", "model files")
KEY = Limit("MLCHECK_MAX_KEY_BYTES", 64 * 1024, "bytes", "key files")

_FILE_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def not_regular(mode: int) -> str | None:
    """What a file is when it is not a regular file ("a directory", …), else None."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _FILE_TYPES if test(mode)), "a special file")


def open_regular(path: Path, what: str) -> BinaryIO:
    """Open a regular file for reading; anything else is refused without blocking.

    The path is checked before it is opened (opening a FIFO would wait for a writer, a
    device may act on open), and the open file again, in case the path changed in
    between. Missing or unreadable files raise OSError, for the caller to word."""
    kind = not_regular(os.stat(path).st_mode)
    if kind is None:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        handle = os.open(path, flags)
        kind = not_regular(os.fstat(handle).st_mode)
        if kind is None:
            return os.fdopen(handle, "rb")
        os.close(handle)
    raise InputError(f"{what} {display_path(path)} is {kind}, not a regular file; mlcheck "
                     "reads only regular files")


def read_limited(path: Path, what: str, limit: Limit) -> bytes:
    """The bytes of a regular file, refused when it is larger than `limit`."""
    cap = limit.value()
    with open_regular(path, what) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > cap:
            raise limit.exceeded(f"{what} {display_path(path)}", f"is {size:,} bytes")
        parts: list[bytes] = []
        total = 0
        try:  # the size is a hint: a file may grow, and /proc files report none
            while total <= cap:
                part = handle.read(min(max(size + 1, 1 << 16), cap + 1 - total))
                if not part:
                    break
                parts.append(part)
                total += len(part)
            content = b"".join(parts)
        except MemoryError:
            raise InputError(f"{what} {display_path(path)}: not enough memory to read its "
                             f"{size:,} bytes") from None
    if len(content) > cap:
        raise limit.exceeded(f"{what} {display_path(path)}", f"is over {cap:,} bytes")
    return content


def sha256_file(path: Path, what: str) -> tuple[str, int]:
    """SHA-256 and size of a regular file, streamed (no size limit: memory stays flat)."""
    digest = hashlib.sha256()
    size = 0
    with open_regular(path, what) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class LimitReached(Exception):
    """Raised inside a reader when a stream went over its limit (see `CappedReader`)."""


class CappedReader(io.RawIOBase):
    """A binary stream that stops with `LimitReached` once more than `cap` bytes were
    read from `inner`, so a parser reading from it (pandas) never sees more than that.

    Parsers may wrap the exception; `reached` says afterwards whether the cap was hit."""

    def __init__(self, inner: BinaryIO, cap: int) -> None:
        super().__init__()
        self.inner, self.cap, self.count, self.reached = inner, cap, 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(min(len(buffer), self.cap + 1 - self.count))
        self.count += len(data)
        if self.count > self.cap:
            self.reached = True
            raise LimitReached(f"more than {self.cap:,} bytes")
        buffer[:len(data)] = data
        return len(data)


def decompress_limited(data: bytes, what: str, limit: Limit) -> bytes:
    """gzip data decompressed, refused once it expands beyond `limit` (a bomb stops
    there: at most limit + 1 bytes are ever produced)."""
    import zlib

    cap = limit.value()
    inflate = zlib.decompressobj(wbits=31)  # gzip header
    try:
        out = inflate.decompress(data, cap + 1)
    except zlib.error as exc:
        raise ValueError(f"not gzip data: {exc}") from None
    if len(out) > cap:
        raise limit.exceeded(what, f"expands to more than {cap:,} bytes")
    if not inflate.eof:
        raise ValueError("the compressed data is truncated")
    return out
