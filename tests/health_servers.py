"""Small real servers for the health-check tests: importable (to run inside the test, on its loop or in
a thread) and runnable as a program (to be a service that Aurora supervises).

    python health_servers.py static ROOT PORT [--tls CERT KEY] [--require-header "Name: value"]
    python health_servers.py line PORT

``static`` serves the files under ROOT the way nginx does: a missing file is 404, a directory without
an index.html is 403 ("directory index is forbidden"), a directory asked for without its trailing slash
is a 301 to it. So a test causes a 404 or a 403 by changing files, as an operator would by mistake.

``line`` speaks a line protocol in the manner of redis: ``PING`` answers ``+PONG``. ``SCRIPT BUSY``
makes it answer every later command with redis's ``-BUSY`` error (as redis does while a script runs);
``DEBUG SPIN`` and ``DEBUG SLEEP`` hang its only thread in a busy loop (state R) or a sleep (state S),
while the kernel goes on accepting connections on its backlog.
"""
from __future__ import annotations

import argparse
import asyncio
import http.server
import ssl
import sys
import time
import urllib.parse
from pathlib import Path

BUSY = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"


# --- static files, nginx-style ---------------------------------------------------------------------------


class StaticHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = Path(".")
    required: tuple[str, str] | None = None
    quiet = True

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if self.required is not None and self.headers.get(self.required[0]) != self.required[1]:
            self._answer(401, b"<h1>401 Authorization Required</h1>\n")
            return
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        target = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in (target, *target.parents):
            self._answer(403, b"<h1>403 Forbidden</h1>\n")
            return
        if target.is_dir():
            if not path.endswith("/"):
                self._answer(301, b"<h1>301 Moved Permanently</h1>\n", {"Location": path + "/"})
                return
            if not (target / "index.html").is_file():
                self._answer(403, b"<h1>403 Forbidden</h1>\n")
                return
            target = target / "index.html"
        try:
            body = target.read_bytes()
        except PermissionError:
            self._answer(403, b"<h1>403 Forbidden</h1>\n")
        except OSError:
            self._answer(404, b"<h1>404 Not Found</h1>\n")
        else:
            self._answer(200, body)

    def _answer(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        if not self.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    quiet = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gives up on the certificate ends its handshake: expected in the TLS tests.
        if not self.quiet:
            super().handle_error(request, client_address)


def static_server(
    root: Path, port: int = 0, tls: tuple[Path, Path] | None = None, required: tuple[str, str] | None = None, quiet: bool = True,
) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (StaticHandler,), {"root": Path(root), "required": required, "quiet": quiet})
    server = _Server(("127.0.0.1", port), handler)
    server.quiet = quiet
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        # The handshake happens in the request's own thread, so a slow client holds up no one else.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


# --- a line protocol, redis-style ------------------------------------------------------------------------


def line_handler(state: dict[str, bool]):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command = line.strip().upper()
                if state.get("busy") and command != b"SCRIPT KILL":
                    writer.write(BUSY)
                elif command == b"PING":
                    writer.write(b"+PONG\r\n")
                elif command == b"SCRIPT BUSY":
                    state["busy"] = True
                    writer.write(b"+OK\r\n")
                elif command == b"SCRIPT KILL":
                    state["busy"] = False
                    writer.write(b"+OK\r\n")
                elif command in (b"DEBUG SPIN", b"DEBUG SLEEP"):
                    writer.write(b"+OK\r\n")
                    await writer.drain()
                    _hang(spin=command == b"DEBUG SPIN")
                else:
                    writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return serve


def _hang(spin: bool) -> None:
    """Block the only thread for good: nothing is answered any more, new connections still queue."""
    while True:
        if not spin:
            time.sleep(3600)


async def _serve_lines(port: int) -> None:
    server = await asyncio.start_server(line_handler({}), "127.0.0.1", port)
    print(f"line server listening on {port}", flush=True)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    static = kinds.add_parser("static")
    static.add_argument("root", type=Path)
    static.add_argument("port", type=int)
    static.add_argument("--tls", nargs=2, type=Path, metavar=("CERT", "KEY"))
    static.add_argument("--require-header", metavar="NAME: VALUE")
    lines = kinds.add_parser("line")
    lines.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.kind == "line":
        asyncio.run(_serve_lines(args.port))
        return
    required = None
    if args.require_header:
        name, _, value = args.require_header.partition(":")
        required = (name.strip(), value.strip())
    server = static_server(args.root, args.port, tuple(args.tls) if args.tls else None, required, quiet=False)
    print(f"static server listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
