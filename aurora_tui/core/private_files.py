"""Files and directories only their owner can read: the database, the logs, the lock and the socket.

The database holds every service's environment (tokens included) and the logs hold whatever the
services print, so what Aurora creates is 0600 in 0700 directories. Modes are given at creation, never
through the process umask: the umask is process-wide, and the console's threads create files too.

A path that another user could have planted (in a shared writable directory such as /tmp) must not be
turned against us: a symbolic link, something that is not a regular file, a file owned by another user
or with a second hard link is refused with :class:`UnsafeFile` instead of being opened and written.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["UnsafeFile", "private_dir", "create_private", "open_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600
# Refuse rather than follow; no controlling terminal from a device; never inherited by a service.
_SAFE_FLAGS = os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK


class UnsafeFile(OSError):
    """A path Aurora refuses to open: a symbolic link, not a regular file, or another user's."""


def private_dir(path: Path) -> Path:
    """``path`` as a directory, creating what is missing of it (parents too) with mode 0700.
    A directory that already exists keeps its mode: a shared one (/tmp) is not Aurora's to change."""
    missing: list[Path] = []
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, its mode stays
        os.chmod(directory, DIR_MODE)  # the umask may have taken bits away; it never adds any
    if not Path(path).is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    return Path(path)


def _check(path: Path, st: os.stat_result, what: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFile(f"refusing to use {what} {path}: it is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"refusing to use {what} {path}: it is not a regular file")
    if st.st_uid != os.geteuid():
        raise UnsafeFile(f"refusing to use {what} {path}: it belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})")
    if st.st_nlink > 1:
        # A hard link planted by another user would make us write into the file it names.
        raise UnsafeFile(f"refusing to use {what} {path}: it has {st.st_nlink} hard links")


def open_private(path: Path, flags: int, what: str = "file") -> int:
    """A descriptor on ``path``, created 0600 if absent, never through a symbolic link, and only if it is
    a regular file of ours. ``flags`` are the access flags (``os.O_RDWR``, ``os.O_WRONLY | os.O_APPEND``...)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | _SAFE_FLAGS, FILE_MODE)
    except OSError as exc:
        # ELOOP from O_NOFOLLOW; EACCES when O_CREAT meets another user's link in a sticky directory.
        if exc.errno in (errno.ELOOP, errno.EACCES, errno.EPERM) and os.path.islink(path):
            raise UnsafeFile(f"refusing to use {what} {path}: it is a symbolic link") from None
        raise
    try:
        _check(path, os.fstat(fd), what)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private(path: Path, what: str = "file") -> Path:
    """Make sure ``path`` exists as a 0600 regular file of ours before a library (SQLite, logging)
    opens it by name: a new file is created 0600 (SQLite gives its -wal and -shm the same mode). An
    existing one keeps its mode; another user's is refused. A symbolic link of our own is followed (a
    database may live elsewhere on purpose); one planted by another user is refused."""
    private_dir(Path(path).parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _SAFE_FLAGS, FILE_MODE)
    except FileExistsError:
        link = os.lstat(path)
        if stat.S_ISLNK(link.st_mode) and link.st_uid != os.geteuid():
            raise UnsafeFile(f"refusing to use {what} {path}: it is a symbolic link of uid {link.st_uid}") from None
        try:
            target = os.stat(path)
        except FileNotFoundError:
            return Path(path)  # our own link to where the file is to be: the library creates it there
        _check(Path(path), target, what)
        return Path(path)
    os.close(fd)
    return Path(path)
