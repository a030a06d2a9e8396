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

Folders are guarded the same way (`Folder`): a folder promptgrad writes into or deletes from is opened
once, as a descriptor, without following a link at any level below the path the user gave, and every
file in it is opened, made, renamed and removed relative to that descriptor (openat, unlinkat,
renameat). A link planted in place of a run folder, a sweep's `logs/` or a report's `plots/` is then
refused, and nothing swapped in after the check is reached either: the descriptor still names the
folder that was checked. The path the user gave is theirs and is followed as written (`/tmp` is a link
on some systems, a home often lives on another disk); levels of it that do not exist yet are made
through descriptors, so none of those can be a link either.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from promptgrad.errors import UserError

READ = os.O_RDONLY
APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT  # read too: to see whether the last line is whole
READ_WRITE = os.O_RDWR | os.O_CREAT
SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: Path, what: str) -> UserError:
    return UserError(
        f"{path} is {what}, not a regular file; promptgrad never reads or writes through one: remove it "
        f"or give another file"
    )


def open_regular(
    path: str | Path, flags: int = READ, mode: int = 0o644, follow_links: bool = False, dir_fd: int | None = None
) -> int:
    """A descriptor of the regular file at `path`, opened without following a link (unless
    `follow_links`: a user's own input file may well be one) or blocking. With `dir_fd`, `path` is
    only shown in messages and the file opened is its last part, in that folder. FileNotFoundError
    passes through (the caller knows whether a missing file is normal)."""
    path = Path(path)
    where = path if dir_fd is None else path.name
    try:
        fd = os.open(where, flags | (SAFE & ~os.O_NOFOLLOW if follow_links else SAFE), mode, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise not_regular(path, "a symbolic link") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a socket, or a folder opened for writing
            raise not_regular(path, kind_of(os.stat(where, dir_fd=dir_fd, follow_symlinks=False).st_mode)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(path, kind_of(info.st_mode))
    if flags & (os.O_WRONLY | os.O_RDWR) and info.st_nlink > 1:
        os.close(fd)
        raise UserError(
            f"{path} has {info.st_nlink - 1} other hard link(s): writing it would change another file too; "
            f"remove it (promptgrad writes it anew)"
        )
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
        raise UserError(
            f"{path} is not UTF-8 text (line {line}, byte {e.start}); it is damaged or not a file promptgrad wrote"
        ) from None


def open_append(path: str | Path):
    """A file opened for appending bytes (made if missing)."""
    return os.fdopen(open_regular(path, APPEND), "ab")  # the descriptor is open for reading too (os.pread)


def open_update(path: str | Path):
    """A binary file opened for reading and writing in place (not made if missing)."""
    return os.fdopen(open_regular(path, os.O_RDWR), "r+b")


def no_space(path: Path) -> UserError:
    return UserError(
        f"no space left on the device holding {path.parent}: {path.name} was not written; "
        f"free some space, then resume the run from its last checkpoint"
    )


def write_error(path: Path, e: OSError) -> UserError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return no_space(path)
    return UserError(f"cannot write {path}: {e.strerror or e}")


def atomic_write(path: str | Path, data: bytes, overwrite: bool = True) -> None:
    """Write `data` to a fresh temporary file beside `path`, fsync it and rename it over `path`, so a
    crash, a second ctrl+c or a full disk never leaves a half-written file, and no temporary file is
    left behind either. The rename replaces whatever was at `path` (a link included) without following
    it; `overwrite=False` refuses anything there but a regular file. The folder is the one the path
    names, opened once (Folder.write_atomic)."""
    path = Path(path)
    try:
        folder = Folder.at(path.parent)
    except FileNotFoundError:
        raise UserError(f"cannot write {path}: its folder {path.parent} does not exist") from None
    with folder:
        folder.write_atomic(path.name, data, overwrite, shown=path)


# ---- folders -----------------------------------------------------------------------------------------

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def check_part(name: str) -> str:
    """One name inside a folder: never a path, never the folder itself or its parent."""
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise ValueError(f"not a single name inside a folder: {name!r}")
    return name


def link_or_not_folder(path: Path, dir_fd: int, name: str, followed: bool = False) -> UserError:
    """Why a folder could not be opened as one (O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a link too)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode) and not followed:
        return UserError(
            f"{path} is a symbolic link; promptgrad never writes into a folder through one: remove the link "
            f"(or give the folder it points to)"
        )
    return UserError(f"{path} is not a folder; move it away or give another path")


class Folder:
    """A folder held open as a descriptor; its files are reached only through it, by name, never through
    a link. `Folder.at(path)` opens a folder the user named, `folder.sub(name)` one below it. Use it as
    a context manager (or `close()` it): the descriptor is the folder's identity while it is open."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"Folder({str(self.path)!r})"

    # ---- opening folders ------------------------------------------------------------------------------
    @staticmethod
    def at(path: str | Path, create: bool = False, link_ok: bool = True) -> Folder:
        """The folder at `path`, as the user wrote it: a link in the path is followed (theirs to make),
        but with `link_ok` False the folder named last must not be one (a run folder to write, a report's
        --out: promptgrad fills it). With `create`, missing levels are made, each through its parent's
        descriptor, and opened without following a link. A missing folder without `create` is
        FileNotFoundError; anything else in the way is a one-line UserError."""
        path = Path(path)
        if "\x00" in str(path):
            raise UserError(f"{str(path)!r} holds a NUL byte (\\x00), which no file name may hold; remove it")
        parts = [p for p in path.parts if p != "/"]
        fd = os.open("/" if path.is_absolute() else ".", DIRECTORY)
        walked = Path("/" if path.is_absolute() else ".")
        try:
            for i, part in enumerate(parts):
                walked = walked / part if str(walked) != "." else Path(part)
                last = i == len(parts) - 1
                child = Folder.open_part(fd, part, walked, follow=not last or link_ok, create=create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return Folder(fd, path)

    @staticmethod
    def open_part(dir_fd: int, name: str, shown: Path, follow: bool, create: bool) -> int:
        flags = DIRECTORY | (0 if follow else os.O_NOFOLLOW)
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
        except NotADirectoryError:
            raise link_or_not_folder(shown, dir_fd, name, follow) from None
        except OSError as e:
            raise UserError(f"cannot open the folder {shown}: {e.strerror or e}") from None
        try:
            os.mkdir(name, 0o777, dir_fd=dir_fd)
        except FileExistsError:
            pass  # made meanwhile by someone else: opened below as whatever it is, never through a link
        except OSError as e:
            raise UserError(f"cannot make the folder {shown}: {e.strerror or e}") from None
        try:
            return os.open(name, DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)  # what promptgrad made is never a link
        except NotADirectoryError:
            raise link_or_not_folder(shown, dir_fd, name) from None

    def sub(self, name: str, create: bool = False) -> Folder:
        """The folder `name` inside this one, never through a link (a link there is a one-line UserError);
        made first with `create`. Missing without `create`: FileNotFoundError."""
        check_part(name)
        return Folder(Folder.open_part(self.fd, name, self.path / name, follow=False, create=create), self.path / name)

    def subpath(self, parts: list[str], create: bool = True) -> Folder:
        """The folder reached from this one by `parts`, each level opened (made) as `sub` does."""
        folder = Folder(os.dup(self.fd), self.path)
        for part in parts:
            with folder:
                folder = folder.sub(part, create)
        return folder

    @staticmethod
    def deepest(path: str | Path) -> tuple[Folder, list[str]]:
        """The deepest folder of `path` that exists (opened as `at` does), and the names below it that do
        not exist yet: a destination's place is held before the slow work, its missing levels made after."""
        path = Path(path)
        missing: list[str] = []
        while True:
            try:
                return Folder.at(path), missing
            except FileNotFoundError:
                if path.name in ("", ".", "..") or path.parent == path:
                    raise
                missing.insert(0, path.name)
                path = path.parent

    # ---- what is in it ------------------------------------------------------------------------------
    def lstat(self, name: str) -> os.stat_result:
        """The entry `name` itself (a link is not followed); FileNotFoundError when there is none."""
        return os.stat(check_part(name), dir_fd=self.fd, follow_symlinks=False)

    def exists(self, name: str) -> bool:
        try:
            self.lstat(name)
        except FileNotFoundError:
            return False
        return True

    def listdir(self) -> list[str]:
        return os.listdir(self.fd)

    def is_regular(self, name: str) -> bool:
        try:
            return stat.S_ISREG(self.lstat(name).st_mode)
        except OSError:
            return False

    def check_not_link(self, name: str) -> None:
        """Refuse a link (or a special file) at `name` before anything is written there; none is fine."""
        try:
            mode = self.lstat(name).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise not_regular(self.path / name, "a symbolic link" if stat.S_ISLNK(mode) else kind_of(mode))

    # ---- files --------------------------------------------------------------------------------------
    def open_fd(self, name: str, flags: int = READ, mode: int = 0o644) -> int:
        """A descriptor of the regular file `name` here, as open_regular opens one (never a link, a FIFO,
        a device; for writing, never one with other hard links)."""
        return open_regular(self.path / check_part(name), flags, mode, dir_fd=self.fd)

    def read_bytes(self, name: str) -> bytes:
        with os.fdopen(self.open_fd(name), "rb") as f:
            return f.read()

    def open_append(self, name: str):
        """A file here opened for appending bytes (made if missing), readable too (os.pread)."""
        return os.fdopen(self.open_fd(name, APPEND), "ab")

    def open_update(self, name: str):
        return os.fdopen(self.open_fd(name, os.O_RDWR), "r+b")

    def unlink(self, name: str) -> bool:
        """Remove the entry `name` here (a link is removed itself, never what it points to); whether there was one."""
        try:
            os.unlink(check_part(name), dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def rmdir(self, name: str) -> None:
        os.rmdir(check_part(name), dir_fd=self.fd)

    def rename(self, old: str, new: str) -> None:
        """Rename within this folder; `new` is replaced whatever it is (a link included: the link itself)."""
        os.rename(check_part(old), check_part(new), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def fresh_name(self, prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(4)}"

    def fresh_file(self, prefix: str) -> tuple[str, int]:
        """A new, empty file here that nothing else can have planted (O_EXCL: made now, by us)."""
        while True:
            name = self.fresh_name(prefix)
            try:
                return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE, 0o600, dir_fd=self.fd)
            except FileExistsError:
                continue

    def fresh_folder(self, prefix: str) -> tuple[str, Folder]:
        """A new, empty folder here, made now by us and opened without following a link."""
        while True:
            name = self.fresh_name(prefix)
            try:
                os.mkdir(name, 0o700, dir_fd=self.fd)
            except FileExistsError:
                continue
            return name, self.sub(name)

    def write_atomic(self, name: str, data: bytes, overwrite: bool = True, shown: Path | None = None) -> None:
        """atomic_write, in this folder: a fresh temporary file written, fsynced and renamed over `name`."""
        path = shown or self.path / check_part(name)
        if not overwrite:
            self.check_not_link(name)
        tmp = None
        try:
            tmp, fd = self.fresh_file(f".{name}.tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                os.fchmod(f.fileno(), 0o644)
            self.rename(tmp, name)
            tmp = None
        except OSError as e:
            raise write_error(path, e) from None
        finally:  # also on KeyboardInterrupt: never leave the temporary file
            if tmp is not None:
                self.unlink(tmp)
