"""A partner community that misbehaves, as a real HTTPS process with mutual TLS.

    python tests/e2e/misbehaving_partner.py MODE --cert C --key K --client-ca CA
        [--answer ACTION=FILE ...] [--status N] [--delay S]

It listens on a free loopback port, requires a client certificate chaining to
``--client-ca`` (the initiating gateway's CA), and prints ``READY <port>`` once it
accepts connections: the tests wait for that line, never for a fixed time.

Modes (what a real responder does wrong, ITI TF-2b 3.38 / 3.39 give no leeway):
    hang       reads the request and never answers (held until the caller hangs up)
    answer     answers HTTP ``--status`` with the ``--answer`` file for the request's
               wsa:Action, after ``--delay`` seconds: a SOAP fault (status 500), or a
               valid response that arrives after the initiating gateway's deadline
    garbage    HTTP 200 ``application/soap+xml`` whose body is not XML at all
    truncated  HTTP 200 with the first half of the ``--answer`` envelope (its
               Content-Length consistent: the HTTP exchange is fine, the XML is not)
    cut        HTTP 200 announcing the whole ``--answer`` but closing the connection
               after half of it (a responder that crashed mid-answer)
"""

from __future__ import annotations

import argparse
import contextlib
import re
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODES = ("hang", "answer", "garbage", "truncated", "cut")
GARBAGE = b"\x00\xffHTTP/1.1 500 oops <<not xml>> \xfe\x9c" * 8
_ACTION = re.compile(rb"<(?:[\w.-]+:)?Action\b[^>]*>\s*([^<\s]+)\s*<")


class Partner(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Misbehaving/1.0"
    options: argparse.Namespace
    answers: dict[str, bytes]

    def log_message(self, fmt: str, *args) -> None:  # quiet: stdout carries READY only
        sys.stderr.write(f"{self.client_address[0]} {fmt % args}\n")

    def _body(self) -> bytes:
        """The request body, Content-Length or chunked (MTOM requests stream chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer_for(self, body: bytes) -> bytes:
        found = _ACTION.search(body)
        action = found.group(1).decode() if found else ""
        answer = self.answers.get(action, self.answers.get("*"))
        if answer is None:
            raise SystemExit(f"no --answer for action {action!r}")
        return answer

    def _send(self, status: int, body: bytes, *, sent: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent])
        self.wfile.flush()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self._body()
        found = _ACTION.search(body)
        sys.stderr.write(f"received {self.path} {found.group(1).decode() if found else '-'}\n")
        sys.stderr.flush()
        mode = self.options.mode
        if mode == "hang":
            # Hold the connection until the caller gives up and closes it.
            with contextlib.suppress(ConnectionResetError, ssl.SSLError):
                while self.connection.recv(1024):
                    pass
            self.close_connection = True
        elif mode == "garbage":
            self._send(200, GARBAGE)
        elif mode == "truncated":
            answer = self._answer_for(body)
            self._send(200, answer[: len(answer) // 2])
        elif mode == "cut":
            answer = self._answer_for(body)
            self._send(200, answer, sent=len(answer) // 2)
            self.close_connection = True
        else:
            answer = self._answer_for(body)
            if self.options.delay:
                threading.Event().wait(self.options.delay)  # the late answer is the point
            # The caller may have stopped waiting: that is what a late answer meets.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                self._send(self.options.status, answer)


def _answers(values: list[str]) -> dict[str, bytes]:
    out = {}
    for value in values:
        action, sep, file = value.partition("=")
        if not sep:
            raise SystemExit(f"--answer {value!r}: expected ACTION=FILE")
        out[action] = Path(file).read_bytes()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", required=True)
    parser.add_argument("--answer", action="append", default=[], metavar="ACTION=FILE")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.0)
    options = parser.parse_args(argv)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.cert, options.key)
    context.load_verify_locations(options.client_ca)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS, as every partner requires

    handler = type("Handler", (Partner,), {"options": options,
                                           "answers": _answers(options.answer)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
