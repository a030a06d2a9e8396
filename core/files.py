"""Opening the files of a run folder (and an exported prompt) so that nothing planted there can be
turned against the user.

A run folder is a record that others copy, unpack and open. Someone could leave a symbolic link where
`metrics.jsonl` or `.lock` belongs (promptgrad would then write through it into a file elsewhere), a
hard link to another file (the same, without a link to see), or a FIFO or device (an open or a read
would block for good). So every file promptgrad reads or writes in a run folder is opened here:

- never through a symbolic link (O_NOFOLLOW on the last component: the link is refused, not followed);
- never blocking (O_NONBLOCK), and refused unless it is a regular file;
- written in place only when it has no other hard link; replaced files are written to a fresh temporary
  file (O_EXCL, so nothing planted under its name is followed either) and renamed over the old one.

Every refusal is a one-line UserError naming the file and what to do about it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from promptgrad.errors import UserError

READ = os.O_RDONLY
APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT  # read too: to see whether the last line is whole
READ_WRITE = os.O_RDWR | os.O_CREAT
SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: Path, what: str) -> UserError:
    return UserError(f"{path} is {what}, not a regular file; promptgrad never reads or writes through one: remove it "
                     f"or give another file")


def open_regular(path: str | Path, flags: int = READ, mode: int = 0o644, follow_links: bool = False) -> int:
    """A descriptor of the regular file at `path`, opened without following a link (unless
    `follow_links`: a user's own input file may well be one) or blocking. FileNotFoundError passes
    through (the caller knows whether a missing file is normal)."""
    path = Path(path)
    try:
        fd = os.open(path, flags | (SAFE & ~os.O_NOFOLLOW if follow_links else SAFE), mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise not_regular(path, "a symbolic link") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a socket, or a folder opened for writing
            raise not_regular(path, kind_of(os.lstat(path).st_mode)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(path, kind_of(info.st_mode))
    if flags & (os.O_WRONLY | os.O_RDWR) and info.st_nlink > 1:
        os.close(fd)
        raise UserError(f"{path} has {info.st_nlink - 1} other hard link(s): writing it would change another file too; "
                        f"remove it (promptgrad writes it anew)")
    return fd


def read_bytes(path: str | Path, follow_links: bool = False) -> bytes:
    with os.fdopen(open_regular(path, follow_links=follow_links), "rb") as f:
        return f.read()


def read_text(path: str | Path) -> str:
    """The file as UTF-8 text; bytes that are not UTF-8 are a one-line UserError, never replaced silently."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path} is not UTF-8 text (line {line}, byte {e.start}); it is damaged or not a file promptgrad wrote") from None


def open_append(path: str | Path):
    """A file opened for appending bytes (made if missing)."""
    return os.fdopen(open_regular(path, APPEND), "ab")  # the descriptor is open for reading too (os.pread)


def open_update(path: str | Path):
    """A binary file opened for reading and writing in place (not made if missing)."""
    return os.fdopen(open_regular(path, os.O_RDWR), "r+b")


def no_space(path: Path) -> UserError:
    return UserError(f"no space left on the device holding {path.parent}: {path.name} was not written; "
                     f"free some space, then resume the run from its last checkpoint")


def write_error(path: Path, e: OSError) -> UserError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return no_space(path)
    return UserError(f"cannot write {path}: {e.strerror or e}")


def atomic_write(path: str | Path, data: bytes, overwrite: bool = True) -> None:
    """Write `data` to a fresh temporary file beside `path`, fsync it and rename it over `path`, so a
    crash, a second ctrl+c or a full disk never leaves a half-written file, and no temporary file is
    left behind either. The rename replaces whatever was at `path` (a link included) without following
    it; `overwrite=False` refuses anything there but a regular file."""
    path = Path(path)
    if not overwrite:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(info.st_mode):
                raise not_regular(path, "a symbolic link" if stat.S_ISLNK(info.st_mode) else kind_of(info.st_mode))
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp", dir=path.parent)  # O_EXCL: a fresh file, never a planted one
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise write_error(path, e) from None
    finally:  # also on KeyboardInterrupt: never leave the temporary file
        if tmp is not None:
            tmp.unlink(missing_ok=True)
