"""gunicorn's gthread worker, with connections shared evenly between workers and recycling one
worker at a time.

Connections. gthread workers all wait on one shared listening socket, and whichever wakes first
accepts. Under a steady load nothing evens that out: with a few keep-alive connections one worker
often accepts them all and the other idles for as long as the client keeps them open (half the
throughput, on a coin toss). Here each worker publishes how many connections it holds on a small
board in shared memory, and a worker accepts only while it holds no more than any other
live worker that is accepting. So the counts never differ by more than one. The socket stays
shared, so a connection waiting in it is accepted by a sibling if a worker dies or drains (where
SO_REUSEPORT, a socket per worker, would reset it). gunicorn's own remedies fall short: with
reuse_port the kernel still hashes two connections onto one worker half the time; worker_connections
leaves the connections past it unaccepted; sync workers keep no connection alive.

Responses. gunicorn sends a response's status line and headers in one send() and its body in
another. A worker killed between the two (SIGKILL, the OOM killer) leaves the proxy with headers it
has already passed on to the client and no body: nginx can no longer retry on another replica, and
the client gets a broken response. Here the headers go out in the same send() as the body's first
bytes (OneSendResponse), so a small response is on the wire whole or not at all. It also saves a
system call per request.

Recycling. gunicorn's own max_requests makes each worker stop on its own, and two can stop at
once. Here a worker that is due (by request count, or because its memory grew by more than
`max_growth_mb` since it started) first takes the board's one recycling token; while a sibling
holds it (until the sibling's replacement is serving) it waits. The stopping worker drains as on
SIGTERM: it stops accepting, finishes what it holds and answers a request on a kept-alive
connection with "Connection: close", so clients see nothing but a new connection.
"""
import fcntl
import mmap
import os
import resource
import struct
import sys
import tempfile
import time

from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker

SLOTS = 128  # more workers than any machine here runs on one port
# Record 0: the recycling token (pid of the worker recycling, highest record in use, since when).
# Records 1..: one per worker: its pid, the connections it holds (-1: accepting none), its last sign
# of life (CLOCK_MONOTONIC, the same clock in every process).
_RECORD = struct.Struct("=iid")
STALE_S = 3.0  # a worker silent this long (stuck in a request) is left out of the comparison
# A worker declining to accept looks again this often: the sibling that should accept may be
# computing, and nothing else would wake the one that declined when their counts cross.
RECHECK_S = 0.005
RECYCLE_TIMEOUT_S = 120.0  # a token older than this is taken as lost (the replacement never came up)
RECYCLING_CHECK_S = 1.0


def rss_mb():
    """This process's resident memory now (not its peak), in MB."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def recycle_reason(requests, max_requests, rss, start_rss, max_growth_mb):
    """Why a worker should be replaced now, or None."""
    if requests >= max_requests:
        return f"{requests} requests served"
    if max_growth_mb and rss - start_rss > max_growth_mb:
        return f"memory grew {rss - start_rss:.0f} MB since start (limit {max_growth_mb} MB)"
    return None


class Board:
    """The workers' shared table: made in the master before any fork, so every worker (and every
    worker that replaces one) maps the same memory."""

    def __init__(self, slots=SLOTS):
        self.slots = slots
        self.memory = mmap.mmap(-1, _RECORD.size * slots)
        # A lock file for the one read-modify-write (taking the recycling token). lockf locks
        # belong to a process, so the inherited descriptor still excludes siblings.
        self._lock = tempfile.TemporaryFile(prefix="gunicorn-board-")

    def _read(self, index):
        return _RECORD.unpack_from(self.memory, _RECORD.size * index)

    def _write(self, index, pid, connections, beat):
        _RECORD.pack_into(self.memory, _RECORD.size * index, pid, connections, beat)

    def _highest(self):
        return self._read(0)[1]

    def claim(self):
        """A free record for a worker about to be forked (called in the master, one at a time)."""
        for index in range(1, self.slots):
            if self._read(index)[0] == 0:
                self._write(index, -1, -1, 0.0)
                token_pid, highest, since = self._read(0)
                self._write(0, token_pid, max(highest, index), since)
                return index
        return None

    def release(self, index):
        self._write(index, 0, -1, 0.0)

    def publish(self, index, connections):
        """This worker holds `connections` (-1: it accepts none)."""
        self._write(index, os.getpid(), connections, time.monotonic())

    def fewest_elsewhere(self, index):
        """The fewest connections any live, accepting sibling holds (None: there is none)."""
        fresh = time.monotonic() - STALE_S
        fewest = None
        for other in range(1, self._highest() + 1):
            if other != index:
                pid, held, beat = self._read(other)
                if pid > 0 and held >= 0 and beat > fresh and (fewest is None or held < fewest):
                    fewest = held
        return fewest

    def take_recycling_token(self):
        """True if this worker may recycle now: no sibling is (its replacement not yet serving)."""
        fcntl.lockf(self._lock, fcntl.LOCK_EX)
        try:
            pid, highest, since = self._read(0)
            if pid and time.monotonic() - since < RECYCLE_TIMEOUT_S:
                return False
            self._write(0, os.getpid(), highest, time.monotonic())
            return True
        finally:
            fcntl.lockf(self._lock, fcntl.LOCK_UN)

    def return_recycling_token(self):
        """Called by a worker that starts serving: whoever recycled has been replaced. Returns the pid
        that held the token, or 0."""
        fcntl.lockf(self._lock, fcntl.LOCK_EX)
        try:
            pid, highest, _ = self._read(0)
            self._write(0, 0, highest, 0.0)
            return pid
        finally:
            fcntl.lockf(self._lock, fcntl.LOCK_UN)


class _HeldHead:
    """Stands in for the socket while gunicorn writes a response's headers: keeps them."""

    data = b""

    def sendall(self, data):
        self.data += data


class OneSendResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, except that headers written by write() wait for its body bytes and
    go out with them in one send(). Every other path (close() of an empty body, sendfile, chunked
    framing, HEAD) is gunicorn's own, unchanged."""

    _head = None  # a _HeldHead while write() runs

    def send_headers(self):
        if self._head is None or self.headers_sent:
            return super().send_headers()
        sock, self.sock = self.sock, self._head
        try:
            super().send_headers()
        finally:
            self.sock = sock

    def _emit_body(self, data):
        head, self._head = self._head, None
        if head is not None and head.data and not self.chunked:
            self.sock.sendall(head.data + data)
            return
        if head is not None and head.data:
            self.sock.sendall(head.data)
        super()._emit_body(data)

    def write(self, arg):
        self._head = _HeldHead()
        try:
            super().write(arg)
        finally:
            head, self._head = self._head, None
            if head is not None and head.data:  # write() sent no body (HEAD, nothing left to send)
                self.sock.sendall(head.data)


class BalancedWorker(ThreadWorker):
    """gthread, accepting only while it holds no more connections than its siblings, handing
    connections back when it holds two more than one of them, and recycling one worker at a time."""

    board = None  # made once in the master (setup), kept across SIGHUP reloads
    max_growth_mb = 0  # set from gunicorn.conf.py; 0: never recycle for memory

    @classmethod
    def setup(cls):
        """Run by gunicorn in the master each time it loads the worker class."""
        if cls.board is None:
            cls.board = Board()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # in the master, just before the fork
        self.slot = self.board.claim()
        # The request count is checked here, with the memory, between requests: gthread's own check
        # would stop the worker whatever its siblings are doing.
        self.recycle_after, self.max_requests = self.max_requests, sys.maxsize
        self.start_rss_mb = 0.0
        self._next_recycling_check = 0.0

    def forget(self):
        """Called by the master when this worker has exited (gunicorn.conf.py child_exit)."""
        if self.slot is not None:
            self.board.release(self.slot)

    def run(self):
        # gthread builds every HTTP/1 response with wsgi.create(), which takes wsgi.Response unless
        # told otherwise: in this worker process, that is OneSendResponse.
        wsgi.Response = OneSendResponse
        self.start_rss_mb = rss_mb()
        taken_from = self.board.return_recycling_token()
        if taken_from:
            self.log.info("worker %s serving in place of recycled worker %s", os.getpid(), taken_from)
        super().run()

    # --- balance ---------------------------------------------------------------------------

    def _fewest_elsewhere(self):
        return None if self.slot is None else self.board.fewest_elsewhere(self.slot)

    def _may_accept(self):
        fewest = self._fewest_elsewhere()
        return fewest is None or self.nr_conns <= fewest

    def set_accept_enabled(self, enabled):
        # gthread calls this on every turn of its loop with "below worker_connections?", and once
        # with False when the worker stops.
        super().set_accept_enabled(enabled and self.alive and self._may_accept())
        if not self.alive:
            self._stop_listening()

    def _stop_listening(self):
        """A stopping worker takes the connections already queued on its listening socket, to answer
        them, then closes its copy of the socket. gthread keeps it open until the worker exits, so a
        connection the kernel queued meanwhile (a proxy's new connection, its request written at
        once) was reset at exit, and nginx does not resend a POST it wrote. Once the last copy is
        closed (the master closes its own before signalling workers) a new connection is refused,
        which nginx does resend to another replica."""
        for listener in self.sockets:
            if listener.sock is None:  # closed already
                continue
            listener.setblocking(False)
            while True:
                held = self.nr_conns
                ThreadWorker.accept(self, listener)  # gthread's own, without the balance check
                if self.nr_conns == held:  # nothing queued (EAGAIN)
                    break
            listener.close()

    def accept(self, listener):
        if not self._may_accept():  # a sibling took fewer since this worker last looked
            super().set_accept_enabled(False)
            return
        super().accept(listener)
        self._publish()

    @property
    def max_keepalived(self):
        """gthread answers with "Connection: close" once it keeps this many connections alive. When a
        sibling holds two fewer (it was just replaced, or clients closed connections there), 0: the
        connection's next response closes it and the client's reconnect lands on the sibling. Only
        the balance on accepting cannot undo an uneven split of connections that stay open."""
        fewest = self._fewest_elsewhere()
        if fewest is not None and self.nr_conns > fewest + 1:
            return 0
        return self._max_keepalived

    @max_keepalived.setter
    def max_keepalived(self, value):
        self._max_keepalived = value

    def _publish(self):
        if self.slot is not None:
            accepting = self.alive and self.nr_conns < self.worker_connections
            self.board.publish(self.slot, self.nr_conns if accepting else -1)

    def wait_for_and_dispatch_events(self, timeout):
        self._publish()
        if self.alive:
            self._check_recycling()
        if self.alive and not self._accepting and self.nr_conns < self.worker_connections:
            timeout = min(timeout, RECHECK_S)  # declined for balance: look again soon
        super().wait_for_and_dispatch_events(timeout)

    # --- recycling -------------------------------------------------------------------------

    def _check_recycling(self):
        """Once a second: due for replacement, and no sibling being replaced? Then drain and exit."""
        now = time.monotonic()
        if now < self._next_recycling_check:
            return
        self._next_recycling_check = now + RECYCLING_CHECK_S
        reason = recycle_reason(self.nr, self.recycle_after, rss_mb(), self.start_rss_mb, self.max_growth_mb)
        if reason and self.board.take_recycling_token():
            self.log.info("worker %s recycles: %s", os.getpid(), reason)
            self.alive = False
            self._publish()
