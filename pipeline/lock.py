"""One run at a time per project folder.

Two ``cluster-impact`` runs in one folder would overwrite each other's outputs and read
each other's half-written files. Every stage command (and ``run``, for all four stages)
therefore holds an exclusive ``flock`` on ``<project>/.cluster-impact.lock`` while it runs.
A second run does not wait: it stops at once with exit 6 (:class:`RunEnvironmentError`),
naming the process that holds the lock, before it reads or writes anything. The lock is
released by the kernel when the holder exits, however it exits (also when killed), so a
stale lock file never blocks a later run; the file itself is left in place (deleting it
would let two runs lock two different files).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from models.errors import RunEnvironmentError

LOCK_NAME = ".cluster-impact.lock"


@contextmanager
def project_lock(root: Path, command: str) -> Iterator[Path]:
    """Hold the project's lock for the duration of the block (see the module docstring)."""
    from .io import default_mode, environment_error

    path = Path(root) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise (environment_error(exc, path, "create the lock file") or exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise RunEnvironmentError(
                f"another cluster-impact run is working in this project folder ({holder}); it holds the lock "
                f"{path}. Nothing was read or written. Fix: wait until it has finished and run again "
                "(two runs in one folder would overwrite each other's outputs)."
            ) from None
        try:
            default_mode(path)
        except OSError:
            pass  # a lock file owned by a colleague: its mode is theirs
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: cluster-impact {command}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
