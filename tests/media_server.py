"""A real HTTP server on 127.0.0.1 for URL-input tests: files from a folder, plus redirects.

/<file>              the file
/redirect?to=<url>   302 to <url>
/loop                302 to itself
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import server as http_server
from pathlib import Path


class _Handler(http_server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/redirect?to="):
            self._redirect(self.path.removeprefix("/redirect?to="))
        elif self.path == "/loop":
            self._redirect("/loop")
        else:
            super().do_GET()

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


@contextmanager
def serve_folder(root: Path) -> Iterator[int]:
    """Serve `root` on 127.0.0.1; yields the port and stops the server on exit."""
    httpd = http_server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
