"""Operating-system errors in one line: why it failed, on which path, and what was being done."""
from __future__ import annotations

import errno

REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def describe_os_error(err: OSError) -> str:
    """`why: path (while what)`: the reason from the errno, the path(s) it names, and the notes that
    the code it passed through added (`BaseException.add_note`), e.g. the stage of a run."""
    why = REASONS.get(err.errno, err.strerror or str(err)) if err.errno is not None else str(err)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    text = f"{why}: {' -> '.join(paths)}" if paths else why
    notes = getattr(err, "__notes__", [])
    return text + (f" (while {'; '.join(notes)})" if notes else "")
