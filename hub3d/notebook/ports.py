"""Ports: bind before serving (so a clash fails at once) and name the process holding one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["PortInUse", "bind_socket", "port_holder", "port_is_free"]


class PortInUse(OSError):
    """The port is taken; the message names the holder when it can be found."""


def port_holder(port: int) -> str | None:
    """'pid 123 (python -m http.server)' for the process listening on `port`, if visible."""
    try:
        import psutil
    except ImportError:
        return _holder_from_proc(port)
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return "another user's process"
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({_one_line(proc.cmdline()) or proc.name()})"
    except (psutil.Error, OSError):
        return _holder_from_proc(port)
    return None


def _one_line(argv: list[str]) -> str:
    """A command line in one line of at most 120 characters (a `-c` script has newlines)."""
    return " ".join(" ".join(argv).split())[:120]


def _holder_from_proc(port: int) -> str | None:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address is HEX_IP:HEX_PORT; state 0A = LISTEN
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                    return f"pid {pid} ({_one_line(cmd.split(chr(0)))})"
        except OSError:
            continue
    return "another user's process"


def bind_socket(host: str, port: int, *,
                another: str = "PORT = {port} in the parameters cell") -> socket.socket:
    """A bound, listening socket for uvicorn, or PortInUse naming who holds the port.

    `another` says how to pick another port where the caller is used ({port}: a suggestion)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, as asyncio's own listening sockets have it: asyncio sets TCP_NODELAY
    # only on connections whose socket says TCP, and without it every answer on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        holder = port_holder(port)
        who = f" by {holder}" if holder else ""
        raise PortInUse(
            f"port {port} is already in use{who}. Stop that process or pick another port "
            f"({another.format(port=port + 1)})."
        ) from exc
    sock.set_inheritable(True)
    return sock


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
