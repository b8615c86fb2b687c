"""The scale benchmark's service: the smallest HTTP service that still behaves like a real one.

``python tiny_service.py --port P [--name N] [--pidfile F] [--tag T]`` (or ``python -m
aurora_tui.bench.tiny_service ...``) answers ``GET /healthz`` with 200 and ``{"status": "ok", "pid": PID}``,
so whoever polls it learns from the answer itself which process served it. It speaks HTTP/1.1 and keeps a
connection open for further requests unless the client says ``Connection: close`` (or speaks HTTP/1.0
without keep-alive), as nginx does. One thread, one ``selectors`` loop, no timer while idle: a fleet of
hundreds costs nothing but memory between health checks. SIGTERM ends it cleanly (sockets closed, its
pidfile removed).

With ``--daemon`` it forks and the parent exits once the child serves, for Monit, whose start program
must exit (it then follows the daemon by its pidfile). ``--reaper PROGRAM ARG...`` runs Monit under a
child subreaper that reaps its orphaned daemons at once, as init does (see :func:`reaper`).

``python tiny_service.py --stop PIDFILE [--grace S]`` is the stop program Monit is given (Monit runs
programs without a shell, so it cannot expand a pid): SIGTERM and SIGCONT to the pid in the file (a
SIGSTOPped process acts on SIGTERM only once continued), SIGKILL after ``grace`` seconds; the pid is only
signalled if its command line names that pidfile, so a reused pid is left alone.

Standard library only and nothing from Aurora at module level, so it starts in a few tens of milliseconds
(run it by path with ``-I -S`` to skip even the site machinery).
"""
from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time

MAX_HEAD = 16384  # a request head larger than this is not a health check: 431 and close
IDLE_TIMEOUT = 75.0  # nginx's keepalive_timeout: an idle kept-alive connection is closed after it
BACKLOG = 128
STOP_GRACE = 5.0
STOP_POLL = 0.01

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large"}


class Stop(Exception):
    """SIGTERM arrived."""


def _on_term(signum: int, frame: object) -> None:
    raise Stop


def _response(status: int, body: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("ascii") + (b"" if head_only else body)


class Conn:
    __slots__ = ("sock", "inbuf", "outbuf", "close_after", "last", "skip")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.close_after = False
        self.last = time.monotonic()
        self.skip = 0  # request body bytes still to discard


def parse_requests(conn: Conn, health_body: bytes) -> None:
    """Answer every complete request in ``conn.inbuf`` (pipelined ones in order) into ``conn.outbuf``."""
    while not conn.close_after:
        if conn.skip:
            dropped = min(conn.skip, len(conn.inbuf))
            conn.inbuf, conn.skip = conn.inbuf[dropped:], conn.skip - dropped
            if conn.skip:
                return
        end = conn.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.inbuf) > MAX_HEAD:
                conn.outbuf += _response(431, b'{"error": "request head too large"}', False)
                conn.close_after = True
            return
        head, conn.inbuf = conn.inbuf[:end].decode("latin-1"), conn.inbuf[end + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            conn.outbuf += _response(400, b'{"error": "bad request line"}', False)
            conn.close_after = True
            return
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip().lower()
        tokens = {t.strip() for t in headers.get("connection", "").split(",")}
        keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
        length = headers.get("content-length", "0")
        conn.skip = int(length) if length.isdigit() else 0
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            status, body = 405, b'{"error": "method not allowed"}'
        elif path == "/healthz":
            status, body = 200, health_body
        else:
            status, body = 404, b'{"error": "not found"}'
        conn.outbuf += _response(status, body, keep_alive, head_only=method == "HEAD")
        conn.close_after = not keep_alive


def serve(port: int, pidfile: str | None) -> int:
    pid = os.getpid()
    health_body = b'{"status": "ok", "pid": %d}' % pid
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        print(f"tiny_service: cannot bind 127.0.0.1:{port}: {exc.strerror}", file=sys.stderr, flush=True)
        return 1
    listener.listen(BACKLOG)
    listener.setblocking(False)
    if pidfile:
        # Written once the port is bound, through a rename so a reader never sees half a pid.
        with open(pidfile + ".tmp", "w") as f:
            f.write(f"{pid}\n")
        os.replace(pidfile + ".tmp", pidfile)
    _announce_ready()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    conns: dict[int, Conn] = {}

    def close(conn: Conn) -> None:
        conns.pop(conn.sock.fileno(), None)
        sel.unregister(conn.sock)
        conn.sock.close()

    try:
        while True:
            # No timer at all while no connection is open: an idle service wakes for nothing.
            events = sel.select(IDLE_TIMEOUT / 3 if conns else None)
            now = time.monotonic()
            for key, mask in events:
                if key.data is None:
                    for _ in range(64):  # drain the accept queue, bounded per wake-up
                        try:
                            sock, _ = listener.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        conn = Conn(sock)
                        conns[sock.fileno()] = conn
                        sel.register(sock, selectors.EVENT_READ, conn)
                    continue
                conn = key.data
                conn.last = now
                if mask & selectors.EVENT_READ:
                    try:
                        data = conn.sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        data = None
                    except OSError:
                        close(conn)
                        continue
                    if data == b"":
                        close(conn)
                        continue
                    if data:
                        conn.inbuf += data
                        parse_requests(conn, health_body)
                if conn.outbuf:
                    try:
                        sent = conn.sock.send(conn.outbuf)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:
                        close(conn)
                        continue
                    conn.outbuf = conn.outbuf[sent:]
                if not conn.outbuf and conn.close_after:
                    close(conn)
                    continue
                sel.modify(conn.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0), conn)
            for conn in [c for c in conns.values() if now - c.last > IDLE_TIMEOUT]:
                close(conn)
    except Stop:
        return 0
    finally:
        for conn in list(conns.values()):
            conn.sock.close()
        listener.close()
        if pidfile:
            try:
                with open(pidfile) as f:
                    ours = f.read().strip() == str(pid)
                if ours:
                    os.unlink(pidfile)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def stop(pidfile: str, grace: float) -> int:
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return 0  # nothing (or no longer this service) to stop
    if os.fsencode(pidfile) not in argv:
        return 0
    for sig in (signal.SIGTERM, signal.SIGCONT):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return 0
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(STOP_POLL)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(STOP_POLL)
    return 0 if not _alive(pid) else 1


def daemonize() -> None:
    """Fork; the parent exits 0 once the child is serving (1 if it could not bind). Monit's start program
    must exit, as an init script does, and Monit then follows the daemon through its pidfile."""
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            os._exit(0 if ready.read(1) == b"1" else 1)
    os.close(ready_r)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nobody reads a daemon's output: holding Monit's pipe open would only confuse it
        os.dup2(null, fd)
    os.close(null)
    global _ready_fd
    _ready_fd = ready_w


_ready_fd: int | None = None  # set in a daemonized child: where to say "serving"


def _announce_ready() -> None:
    global _ready_fd
    if _ready_fd is not None:
        os.write(_ready_fd, b"1")
        os.close(_ready_fd)
        _ready_fd = None


def reaper(argv: list[str]) -> int:
    """Run ``argv`` (Monit) as a child subreaper that reaps at once, as init does on a real host.

    Monit's services daemonize, so their parent becomes the nearest subreaper; in a container that may be
    an init that reaps late, and Monit sees a killed service as a zombie until then. With this process as
    their reaper, a dead daemon is gone at once, as under systemd. SIGTERM goes to the child; the reaper
    itself lasts until its last child (the daemons too) has exited."""
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("tiny_service.py --reaper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
        return 1
    child = os.fork()
    if child == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return code
        if pid == child:
            code = os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    # Hand-parsed: argparse alone would add a good part of the start-up time this service is meant to save.
    args = list(sys.argv[1:] if argv is None else argv)
    opts: dict[str, str] = {}
    while args:
        key = args.pop(0)
        if key == "--daemon":
            opts[key] = "1"
            continue
        if key == "--reaper":
            return reaper(args) if args else 2
        if key not in ("--port", "--name", "--pidfile", "--tag", "--stop", "--grace") or not args:
            print(f"usage: tiny_service.py --port P [--name N] [--pidfile F] [--tag T] [--daemon] | --stop PIDFILE [--grace S] | --reaper PROGRAM [ARG...]"
                  f" (bad argument {key!r})", file=sys.stderr)
            return 2
        opts[key] = args.pop(0)
    if "--stop" in opts:
        return stop(opts["--stop"], float(opts.get("--grace", STOP_GRACE)))
    if not opts.get("--port", "").isdigit():
        print("tiny_service.py: --port P is required", file=sys.stderr)
        return 2
    if "--daemon" in opts:
        daemonize()
    signal.signal(signal.SIGTERM, _on_term)
    try:
        return serve(int(opts["--port"]), opts.get("--pidfile"))
    except Stop:  # SIGTERM before the serving loop was entered
        return 0


if __name__ == "__main__":
    sys.exit(main())
