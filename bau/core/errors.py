"""The one exception type the CLI turns into a one-line message.

Anything the user can get wrong (a path, an option, a file) raises ``BauError`` with a message that
names the offending file or option and what was expected; ``bau`` prints it as ``error: ...`` and
exits with status 2 instead of showing a traceback.
"""
from __future__ import annotations

import errno


class BauError(Exception):
    """A user-facing error: bad input, missing file, malformed option."""


def one_line(error: BaseException) -> str:
    """The user-facing line of ``error``.

    A ``BauError`` raised in a DataLoader worker reaches the main process re-raised with the
    worker's whole traceback as its message ("Caught BauError in DataLoader worker process 0.
    Original Traceback ... bau.core.errors.BauError: image x.jpg: ..."); this returns just the original
    message. Any other message is returned as it is, joined onto one line.
    """
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        for prefix in ("bau.core.errors.BauError: ", "BauError: "):
            if last.startswith(prefix):
                return last[len(prefix):]
        return last
    return " ".join(text.split())


def describe_os_error(error: BaseException) -> str:
    """A short reason for a failed write: ``no space left on the device`` for a full disk, the
    system's words otherwise (``torch.save`` reports a full disk as ``unexpected pos ...``)."""
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return "no space left on the device"
        return error.strerror or str(error)
    text = str(error)
    if "unexpected pos" in text or "file write failed" in text:
        return "the write stopped short; is the disk full?"
    return " ".join(text.split()) or type(error).__name__
