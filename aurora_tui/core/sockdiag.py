"""The host's TCP sockets, from the kernel's socket-diagnostics interface (what ``ss`` uses).

Health checks leave TIME_WAIT entries behind by the thousand on a busy host (about 12,000 at 200
services checked every second). ``/proc/net/tcp`` formats every one of them as text on each read,
which cost more than the rest of a scan together; asked through netlink, the kernel leaves out the
states not asked for before anything is formatted. TIME_WAIT sockets have no owner anyway (inode 0).
Where netlink is refused (a seccomp filter, an old kernel), ``/proc/net/tcp`` is read instead.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
# Every TCP state but TIME_WAIT (6) and CLOSE (7): sockets with an owner.
WANTED_STATES = 0xFFF & ~((1 << 6) | (1 << 7))
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
REQUEST = struct.Struct("=BBBBI48x")  # struct inet_diag_req_v2, its socket id left zero
# struct inet_diag_msg: family, state, timer, retrans, then the socket id (source port first, big
# endian), then expires, rqueue, wqueue, uid and inode.
STATE_AT, PORT_AT, INODE_AT = 1, 4, 68
RECEIVE = 1 << 16


@dataclass
class TcpSockets:
    listening: dict[int, list[int]] = field(default_factory=dict)  # port -> inodes of its listeners
    connected: set[int] = field(default_factory=set)  # inodes of sockets that are not listening


def tcp_sockets() -> TcpSockets:
    try:
        return _from_netlink()
    except OSError:
        return _from_proc()


def _from_netlink() -> TcpSockets:
    found = TcpSockets()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            request = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, WANTED_STATES)
            nl.send(HEADER.pack(HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + request)
            _read_dump(nl, found)
    return found


def _read_dump(nl: socket.socket, found: TcpSockets) -> None:
    while True:
        data = nl.recv(RECEIVE)
        if not data:
            raise OSError("netlink closed the dump")
        offset = 0
        while offset + HEADER.size <= len(data):
            length, kind, _, _, _ = HEADER.unpack_from(data, offset)
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR or length < HEADER.size:
                raise OSError("netlink refused the socket dump")
            body = offset + HEADER.size
            inode = int.from_bytes(data[body + INODE_AT:body + INODE_AT + 4], "little")
            if inode:
                if data[body + STATE_AT] == TCP_LISTEN:
                    port = int.from_bytes(data[body + PORT_AT:body + PORT_AT + 2], "big")
                    found.listening.setdefault(port, []).append(inode)
                else:
                    found.connected.add(inode)
            offset += (length + 3) & ~3


def _from_proc() -> TcpSockets:
    found = TcpSockets()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            handle = open(table, "rb")
        except OSError:
            continue
        with handle:
            next(handle, None)
            for line in handle:
                fields = line.split(None, 10)
                if len(fields) < 10 or fields[9] == b"0":
                    continue
                inode = int(fields[9])
                if fields[3] == b"0A":  # LISTEN
                    found.listening.setdefault(int(fields[1].rsplit(b":", 1)[1], 16), []).append(inode)
                else:
                    found.connected.add(inode)
    return found
