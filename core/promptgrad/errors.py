"""The one exception type for mistakes a user can fix (bad flags, files, templates).

The command line turns it into a one-line message and exit status 2; the TUI shows it beside the form
field it names. What the machine refuses (a read-only disk, a full one) is one line too, naming the cause;
a process of a distributed run that went away is one line with exit status 1. Anything else is a bug,
reported as such with its traceback kept.
"""

import errno


class UserError(Exception):
    """Bad input: the message says what was wrong and how to fix it, in one line."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field  # the config field at fault, so a form can flag it


ADVICE = {
    errno.EROFS: "copy the run folder to a writable disk and use it there",
    errno.EACCES: "use a folder you may write, or fix its permissions",
    errno.EPERM: "use a folder you may write, or fix its permissions",
    errno.ENOSPC: "free some space, then resume the run",
    errno.EDQUOT: "free some space, then resume the run",
    errno.EMFILE: "raise the limit (ulimit -n), then resume the run",
    errno.EIO: "check the disk, then resume the run",
    errno.ENFILE: "close some programs, then resume the run",
    errno.ENAMETOOLONG: "choose a shorter name or folder",
}


def environment_problem(e: BaseException) -> str | None:
    """One line saying what the machine refused (a read-only disk, a name the OS cannot take), when `e` is
    the environment's doing rather than a bug in promptgrad; None otherwise."""
    if isinstance(e, OSError) and e.errno in ADVICE:  # others (EBADF, EINVAL) are more likely our own mistakes
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}; {ADVICE[e.errno]}"
    if isinstance(e, ValueError) and "null byte" in str(e):
        return "a file name holds a NUL byte (\\x00), which no file name may hold; remove it"
    return None


def peer_ended(e: BaseException) -> bool:
    """Did another process of a distributed run (torchrun, accelerate launch) go away under us? Its own
    output says why; this one can only say that the collective broke."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    text = str(e).lower()
    return isinstance(e, getattr(dist, "DistError", ())) or any(
        s in text
        for s in (
            "connection closed by peer",
            "connection reset by peer",
            "broken pipe",
            "nccl communicator was aborted",
        )
    )
