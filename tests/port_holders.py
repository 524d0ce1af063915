"""Other programs on a port hub3d wants: a listener that never answers, a plain HTTP server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Accepts every connection and keeps it open without a byte back (a stuck kernel, a debugger).
SILENT = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
"""

# Answers every GET with 200 and a body that is not hub3d's (`python -m http.server`-like).
PLAIN_HTTP = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>not hub3d</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
httpd = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""

PROGRAMS = {"silent": SILENT, "plain-http": PLAIN_HTTP}


@contextmanager
def holding(kind: str, port: int = 0) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Run the `kind` program on `port` (0: any free one); yields (port, its process)."""
    proc = subprocess.Popen([sys.executable, "-c", PROGRAMS[kind], str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {kind} holder could not listen on port {port}")
        yield int(line), proc
    finally:
        proc.kill()
        proc.communicate(timeout=10)  # reaps it and closes its pipe
