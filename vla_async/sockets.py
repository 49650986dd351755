"""ZeroMQ socket setup shared by the client and the server: options, CurveZMQ, binding.

Every socket gets LINGER=0 (closing never blocks on unsent data), IMMEDIATE=1 (no queueing to
peers that are not connected), MAXMSGSIZE (a peer sending a larger frame is disconnected by libzmq
before the frame is buffered) and a bounded reconnect interval.
"""

from __future__ import annotations

import errno
import select
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from vla_async.config import NetworkConfig

CLIENT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # a client's frame cap when network.max_frame_bytes is 0
# Plain ints: pyzmq's enum flags cost ~2-4 us per `|`/`&`/getsockopt, several times per message.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_FRAME_TYPES = (bytes, memoryview, zmq.Frame)


class CurveSetupError(RuntimeError):
    """CurveZMQ is enabled but a key file or folder is missing."""


class BindError(RuntimeError):
    """The server cannot listen on its address; the message says which and what to do."""


def _common_options(sock: zmq.Socket, network: NetworkConfig, max_frame_bytes: int) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, min(int(max_frame_bytes), int(network.max_message_bytes)))
    sock.setsockopt(zmq.RECONNECT_IVL, max(1, int(network.reconnect_min_s * 1000)))
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(1, int(network.reconnect_max_s * 1000)))


def _load_key(path: str | None, what: str, secret: bool) -> tuple[bytes, bytes | None]:
    if not path:
        raise CurveSetupError(f"curve is enabled but network.curve.{what} is not set")
    if not Path(path).is_file():
        raise CurveSetupError(f"network.curve.{what}: no key file at {path}")
    public, secret_key = zmq.auth.load_certificate(path)
    if secret and secret_key is None:
        raise CurveSetupError(f"network.curve.{what}: {path} holds no secret key (use the .key_secret file)")
    return public, secret_key


def client_frame_limit(network: NetworkConfig) -> int:
    return int(network.max_frame_bytes) or CLIENT_MAX_FRAME_BYTES


def make_dealer(ctx: zmq.Context, network: NetworkConfig, *, server_public_key: bytes | None = None) -> zmq.Socket:
    """Robot side: a DEALER connected to the server at network.host:network.port. `server_public_key`
    (Z85, e.g. from a fleet's route) replaces the network.curve.server_public_key file when given."""
    sock = ctx.socket(zmq.DEALER)
    try:
        _common_options(sock, network, client_frame_limit(network))
        sock.setsockopt(zmq.IMMEDIATE, 1)
        curve = network.curve
        if curve.enabled:
            public, secret = _load_key(curve.client_secret_key, "client_secret_key", secret=True)
            if server_public_key is None:
                server_public_key, _ = _load_key(curve.server_public_key, "server_public_key", secret=False)
            sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_public_key
        sock.connect(f"tcp://{network.host}:{network.port}")
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def load_public_key(path: str) -> bytes:
    """The public key (Z85) of a key file made by `vla-async keys` (public or secret file)."""
    return _load_key(path, "server_public_key", secret=False)[0]


def _bind(sock: zmq.Socket, host: str, port: int) -> int:
    """Bind `sock`; a busy port or a foreign address becomes a one-line BindError."""
    try:
        if port == 0:
            return sock.bind_to_random_port(f"tcp://{host}")
        sock.bind(f"tcp://{host}:{port}")
        return port
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} on {host} is already in use (another vla-async serve?): stop that "
                            f"process or pick another port with --network.port=N (0 = any free port)") from None
        raise BindError(f"cannot listen on tcp://{host}:{port}: {exc.strerror}; check --network.host "
                        "(an address of this machine, 127.0.0.1 by default)") from None


class ServerEndpoint:
    """Server side: a bound ROUTER (plus the CURVE authenticator when enabled). Port 0 = any free port.

    `max_frame_bytes` is the ZMQ_MAXMSGSIZE (capped at network.max_message_bytes)."""

    def __init__(self, ctx: zmq.Context, network: NetworkConfig, port: int | None = None, *,
                 max_frame_bytes: int | None = None):
        self.auth: ThreadAuthenticator | None = None
        self.socket = ctx.socket(zmq.ROUTER)
        try:
            _common_options(self.socket, network, max_frame_bytes or network.max_frame_bytes
                            or network.max_message_bytes)
            self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
            curve = network.curve
            if curve.enabled:
                public, secret = _load_key(curve.server_secret_key, "server_secret_key", secret=True)
                keys_dir = curve.authorized_keys_dir
                if not keys_dir or not Path(keys_dir).is_dir():
                    raise CurveSetupError(f"network.curve.authorized_keys_dir: no folder at {keys_dir}")
                self.auth = ThreadAuthenticator(ctx)
                self.auth.start()
                self.auth.configure_curve(domain="*", location=str(keys_dir))
                self.socket.curve_publickey, self.socket.curve_secretkey = public, secret
                self.socket.curve_server = True
            self.port = _bind(self.socket, network.host, network.port if port is None else port)
        except BaseException:
            self.close()
            raise
        self.endpoint = f"tcp://{network.host}:{self.port}"

    def close(self) -> None:
        self.socket.close(linger=0)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


class SharedSocket:
    """A ZeroMQ socket used by several threads: every operation runs under one lock.

    Threads wait for input with `select` on the socket's ZMQ_FD (an OS descriptor, safe to wait
    on from any thread) instead of blocking inside libzmq, so a sending thread never has to hand
    its message to another thread first. ZMQ_FD is edge-triggered: it only fires again after
    ZMQ_EVENTS was read, so every operation here ends by draining all ready input (`exchange`).
    """

    def __init__(self, sock: zmq.Socket):
        self.socket = sock
        self.lock = threading.Lock()
        self.fd: int = sock.getsockopt(zmq.FD)
        # True while the last operation ended with ZMQ_EVENTS saying "no input" and nothing touched the
        # socket since: then ZMQ_FD will signal the next message, and a waiter may sleep on it unchecked.
        self.armed = False

    def exchange(self, frames: Sequence[Any] | None = None, *, copy: bool = True,
                 max_recv: int = 1000) -> tuple[bool, list[list[zmq.Frame]]]:
        """Optionally send `frames` (never blocks), then receive everything ready."""
        sent = False
        received: list[list[zmq.Frame]] = []
        with self.lock:
            if self.socket.closed:
                return False, received
            if frames is not None:
                try:
                    send_frames(self.socket, frames, copy)
                    sent = True
                except zmq.ZMQError:  # no connected peer (IMMEDIATE) or queue full
                    sent = False
            armed = False
            while len(received) < max_recv:
                if not self.socket.getsockopt(_EVENTS) & _POLLIN:
                    armed = True
                    break
                received.append(recv_frames(self.socket))
            self.armed = armed
        return sent, received

    def send(self, frames: Sequence[Any], *, copy: bool = True) -> tuple[bool, bool]:
        """Send without receiving: (sent, input_ready). When input is ready the caller must wake
        the thread that receives, because this call may have consumed the ZMQ_FD edge."""
        with self.lock:
            if self.socket.closed:
                return False, False
            try:
                send_frames(self.socket, frames, copy)
                sent = True
            except zmq.ZMQError:  # full queue or unroutable peer
                sent = False
            input_ready = bool(self.socket.getsockopt(_EVENTS) & _POLLIN)
            self.armed = not input_ready
            return sent, input_ready

    def close(self) -> None:
        with self.lock:
            self.armed = False
            self.socket.close(linger=0)


def send_frames(sock: zmq.Socket, frames: Sequence[Any], copy: bool = True) -> None:
    """`sock.send_multipart(frames, NOBLOCK, copy)` with int flags. Raises zmq.Again (nothing sent)
    when the first frame cannot be queued; ZeroMQ then queues the other parts atomically with it."""
    last = len(frames) - 1
    if last < 0:
        raise ValueError("a message needs at least one frame")
    for frame in frames:  # checked before the first part leaves: never half a message on the socket
        if type(frame) not in _FRAME_TYPES:
            memoryview(frame)  # TypeError unless bytes-like
    send = sock.send
    for i, frame in enumerate(frames):
        send(frame, _MORE_NOBLOCK if i < last else _NOBLOCK, copy=copy)


def recv_frames(sock: zmq.Socket) -> list[zmq.Frame]:
    """`sock.recv_multipart(NOBLOCK, copy=False)` without a getsockopt(RCVMORE) per part (a part
    knows whether more follow; ZeroMQ delivers the parts of a message together)."""
    frame = sock.recv(_NOBLOCK, copy=False)
    parts = [frame]
    while frame.more:
        frame = sock.recv(_NOBLOCK, copy=False)
        parts.append(frame)
    return parts


def wait_readable(fds: Sequence[int], timeout_s: float) -> list[int]:
    """Block until one of `fds` is readable or `timeout_s` passes; returns the readable ones
    (a closed fd just returns, empty)."""
    try:
        return select.select(fds, (), (), max(0.0, timeout_s))[0]
    except (OSError, ValueError):  # a socket closed under us by a reconnect: the caller retries
        return []
