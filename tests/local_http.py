"""A stdlib HTTP server on 127.0.0.1 for tests that play an outside host (an image host, the hub).

Several of those tests make our code hang up on purpose (a size cap, a timeout); the stdlib
server then prints the client's disconnect as a traceback. That is the expected outcome there,
so it is dropped; any other handler error is still printed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class LocalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client hung up: ours, on purpose
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free port in a thread; yield its base URL; stop and close after."""
    server = LocalHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def slow_tunnel(target: str, answer_delay_s: float) -> type[BaseHTTPRequestHandler]:
    """A handler that relays every request to `target` and holds each POST's answer back for
    `answer_delay_s`: a slow tunnel, in which the server has queued a job its client has not
    heard of yet."""

    class SlowTunnel(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            skip = {"host", "content-length", "connection"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            answer = requests.request(self.command, target + self.path, data=body,
                                      headers=headers, allow_redirects=False, timeout=120)
            if self.command == "POST":
                time.sleep(answer_delay_s)
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in {"content-length", "transfer-encoding", "connection",
                                        "content-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_DELETE = _relay  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    return SlowTunnel
