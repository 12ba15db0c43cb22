"""Malformed HTTP, spoken over raw sockets to the real gunicorn: refused with a 4xx, never a 5xx or a
hang, and the service goes on answering."""
import socket
import time

import pytest
import requests

from tests import corpus

SECONDS = 5.0  # how long a refusal may take to arrive before we call it a hang


def exchange(service, raw, half_close=False):
    """Send raw bytes; return the status code the server answered with (None if it closed silently)."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=SECONDS) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused before we finished; its answer may still be waiting
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    if not received:
        return None
    assert received.startswith(b"HTTP/1."), received[:100]
    return int(received.split(b" ", 2)[1])


def request(method=b"POST", path=b"/predict", headers=(), body=b"", version=b"HTTP/1.1"):
    lines = [method + b" " + path + b" " + version, b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


MALFORMED = {
    "request line over the limit": request(path=b"/predict?" + b"a" * 9000),
    "101 header fields": request(headers=[b"X-%d: 1" % i for i in range(101)]),
    "a header field over the limit": request(headers=[b"X-Long: " + b"a" * 9000]),
    "a method with symbols": request(method=b"G@T"),
    "an unknown HTTP version": request(version=b"HTTP/9.9"),
    "no HTTP version": b"GET /\r\n\r\n",
    "a header without a colon": request(headers=[b"Content-Type image/png"]),
    "a space before the colon": request(headers=[b"Content-Length : 3"], body=b"abc"),
    "a NUL byte in a header": request(headers=[b"X-A: a\x00b"]),
    "an obsolete folded header": request(headers=[b"X-A: a", b" folded"]),
    "a negative Content-Length": request(headers=[b"Content-Length: -1"]),
    "a non-numeric Content-Length": request(headers=[b"Content-Length: ten"]),
    "two different Content-Lengths": request(headers=[b"Content-Length: 3", b"Content-Length: 4"], body=b"abcd"),
    "Content-Length and chunked together": request(
        headers=[b"Content-Length: 4", b"Transfer-Encoding: chunked"], body=b"0\r\n\r\n"),
    "an unknown Transfer-Encoding": request(headers=[b"Transfer-Encoding: gzip"], body=b"abc"),
    "a chunk size that is not hex": request(headers=[b"Transfer-Encoding: chunked",
                                                     b"Content-Type: image/png"], body=b"zz\r\nabc\r\n0\r\n\r\n"),
    "a chunk size that is not hex, to V2 infer": request(
        path=b"/v2/models/mnist/infer", headers=[b"Transfer-Encoding: chunked", b"Content-Type: application/json"],
        body=b"zz\r\n{}\r\n0\r\n\r\n"),
    "a chunk longer than it says": request(headers=[b"Transfer-Encoding: chunked", b"Content-Type: image/png"],
                                           body=b"2\r\nabcdef\r\n0\r\n\r\n"),
    "binary garbage": corpus.random_bytes(2000, seed=3) + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_request_gets_a_4xx(service, name):
    status = exchange(service, MALFORMED[name])
    assert status is not None and 400 <= status < 500, status


def test_tls_spoken_to_plain_http_is_closed(service):
    """A ClientHello holds no line end; once the client gives up, the server closes (or says 400)."""
    status = exchange(service, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), half_close=True)
    assert status is None or status == 400


def test_body_shorter_than_its_content_length(service):
    """The client promises 1000 bytes, sends 10 and stops: an answer (4xx) or a close, not a hang or 5xx."""
    started = time.monotonic()
    status = exchange(service, request(headers=[b"Content-Type: image/png", b"Content-Length: 1000"],
                                       body=b"\x89PNG\r\n\x1a\n00"), half_close=True)
    assert status is None or 400 <= status < 500, status
    assert time.monotonic() - started < SECONDS


def test_still_ready_after_malformed_http(service):
    assert requests.get(service.url + "/health/ready", timeout=5).status_code == 200
