"""One engine per database: an exclusive ``flock`` on ``<db>.lock`` held for the engine's lifetime.

The kernel drops the lock when the process dies, so a ``kill -9`` never leaves a stale lock behind. The
lock file lives next to the database, possibly in a directory others can write to, so it is opened
without following a symbolic link and only if it is a regular file of ours (see :mod:`.private_files`):
a planted link must never make the engine truncate the file it points to.

Deleting the lock file does not free the database: an engine also holds a ``flock`` on the database file
itself, a control socket that answers means an engine lives there, and, with no file at all, an engine
binds a name in Linux's abstract socket namespace derived from the database's path: nothing on disk to
delete, and the kernel frees it when the engine dies, so even deleting the database, its lock and its
socket together does not let a second engine in beside the first. ``flock`` and the POSIX locks
SQLite takes are independent on Linux; the database descriptor stays open until SQLite has closed its
own (closing any descriptor of a file drops the process's POSIX locks on it).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import struct
from pathlib import Path

from .control import reachable, socket_path
from .private_files import create_private, open_private, private_dir

# How long a connect to a leftover socket may take before it counts as nobody answering.
SOCKET_PROBE_TIMEOUT = 2.0


class EngineAlreadyRunning(RuntimeError):
    pass


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


class EngineLock:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = lock_path(db)
        self._fd: int | None = None
        self._db_fd: int | None = None
        self._name: socket.socket | None = None

    def acquire(self) -> None:
        private_dir(self.path.parent)
        self._acquire_files()
        # Last, as the guard that needs no file: the checks above name the more telling cause first.
        try:
            self._name = claim_name(self.db)
        except BaseException:
            self.release()
            raise

    def _acquire_files(self) -> None:
        fd = open_private(self.path, os.O_RDWR, "lock file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineAlreadyRunning(
                f"another Aurora engine (pid {holder}) is already running on {self.db}; attach to it or choose another --db"
            ) from None
        try:
            self._refuse_a_live_socket()
            self._db_fd = self._hold_database()
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _refuse_a_live_socket(self) -> None:
        pid = answering_engine(socket_path(self.db))
        if pid is not None:
            raise EngineAlreadyRunning(
                f"another Aurora engine (pid {pid or 'unknown'}) answers on {socket_path(self.db)} although the lock "
                f"file {self.path} was removed; it still runs on {self.db}: attach to it or stop it first"
            )

    def _hold_database(self) -> int:
        create_private(self.db, "database")
        fd = os.open(self.db, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EngineAlreadyRunning(
                f"another Aurora engine holds the database {self.db} although its lock file {self.path} was removed; "
                "attach to it or stop it first"
            ) from None
        return fd

    def release(self) -> None:
        # The database descriptor last of all, and only after SQLite closed its connections (see above).
        for name in ("_db_fd", "_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        if self._name is not None:
            self._name.close()
            self._name = None

    @staticmethod
    def holder(db: Path) -> int | None:
        """The pid of the engine holding ``db``'s lock, or None when no engine runs on it."""
        try:
            fd = os.open(lock_path(db), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def engine_name(db: Path) -> str:
    """The abstract socket name of the engine on ``db``: one per database path, whatever is on disk."""
    return "\0aurora-engine-" + hashlib.sha256(str(Path(db).resolve()).encode()).hexdigest()[:32]


def claim_name(db: Path) -> socket.socket:
    """Bind the database's abstract name, or raise EngineAlreadyRunning naming who holds it. Sockets
    are not inherited by children (close-on-exec), so a service can never keep the name alive."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(engine_name(db))
        sock.listen(1)
    except OSError:
        sock.close()
        pid = _name_holder(db)
        raise EngineAlreadyRunning(
            f"another Aurora engine (pid {pid or 'unknown'}) is already running on {db}, even if its files were "
            "removed; attach to it or stop it first"
        ) from None
    return sock


def _name_holder(db: Path) -> int | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(SOCKET_PROBE_TIMEOUT)
        try:
            probe.connect(engine_name(db))
        except OSError:
            return None
        return _peer_pid(probe)


def answering_engine(path: Path) -> int | None:
    """The pid listening on the control socket at ``path`` (0 if it cannot be told), or None when
    nothing listens there. A stopped engine counts: the kernel accepts the connection for it."""
    if not os.path.lexists(path):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SOCKET_PROBE_TIMEOUT)
        try:
            with reachable(path) as where:
                sock.connect(where)
        except (ConnectionRefusedError, FileNotFoundError, NotADirectoryError):
            return None  # a socket file left by an engine that died
        except OSError:
            return 0  # someone is there (a full backlog, a slow peer), who is not known
        return _peer_pid(sock)


def _peer_pid(sock: socket.socket) -> int:
    """The pid of the process at the other end of a connected unix socket, as the kernel tells it."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[0])
