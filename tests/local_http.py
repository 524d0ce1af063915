"""A stdlib HTTP server on 127.0.0.1 for tests that play an outside host (an image host, the hub).

Several of those tests make our code hang up on purpose (a size cap, a timeout); the stdlib
server then prints the client's disconnect as a traceback. That is the expected outcome there,
so it is dropped; any other handler error is still printed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
