"""Robot side of a fleet: ask the fleet's route (one HTTP GET) which policy server replica to use.

`GET <route_url>?robot=<name>[&failed=<host:port>]` answers JSON
`{"host": str, "port": int, "replica": str, "server_public_key": str | null}` (the key, Z85 text, only
when the fleet runs CurveZMQ). `failed` names the replica this robot just lost, so the fleet does not
hand it back before its own health checks confirm it. Only the standard library: a robot computer
needs no Ray. The answer is validated strictly (a route is a network peer like any other).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

_MAX_ANSWER_BYTES = 4096
_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,255}$")
_Z85_KEY = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


class RouteError(RuntimeError):
    """The route could not be asked or gave an unusable answer (the message says which)."""


@dataclass(frozen=True)
class RouteAnswer:
    host: str
    port: int
    replica: str
    server_public_key: str | None = None  # Z85, when the fleet runs CurveZMQ

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def check_robot_name(name: str) -> str:
    """Robot names on the route: letters, digits and `_.:@-`, at most 128 characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"robot name {name!r} for the fleet route: use 1-128 letters, digits or _.:@-")
    return name


def route_request_url(route_url: str, robot: str, failed: str | None = None) -> str:
    query = {"robot": check_robot_name(robot)}
    if failed:
        query["failed"] = failed
    sep = "&" if urllib.parse.urlparse(route_url).query else "?"
    return f"{route_url}{sep}{urllib.parse.urlencode(query)}"


def parse_route_answer(body: bytes) -> RouteAnswer:
    """The route's JSON answer as a RouteAnswer; RouteError on anything else."""
    if len(body) > _MAX_ANSWER_BYTES:
        raise RouteError(f"route answer too long ({len(body)} bytes)")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RouteError(f"route answer is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RouteError("route answer is not a JSON object")
    return RouteAnswer(host=_checked_host(data.get("host")), port=_checked_port(data.get("port")),
                       replica=_checked_replica(data.get("replica", "")),
                       server_public_key=_checked_key(data.get("server_public_key")))


def _checked_host(host: object) -> str:
    if not isinstance(host, str) or not _HOST.match(host):
        raise RouteError(f"route answer has no valid host: {str(host)[:80]!r}")
    return host


def _checked_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise RouteError(f"route answer has no valid port: {str(port)[:80]!r}")
    return port


def _checked_replica(replica: object) -> str:
    if not isinstance(replica, str) or len(replica) > 256:
        raise RouteError("route answer has an invalid replica name")
    return replica


def _checked_key(key: object) -> str | None:
    if key is not None and (not isinstance(key, str) or not _Z85_KEY.match(key)):
        raise RouteError("route answer has an invalid server_public_key (want 40 Z85 characters)")
    return key


def ask_route(route_url: str, robot: str, *, failed: str | None = None, timeout_s: float = 1.0) -> RouteAnswer:
    """One GET to the fleet's route; RouteError (one line) when it is unreachable or refuses."""
    url = route_request_url(route_url, robot, failed)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:  # noqa: S310 - the configured route URL
            body = reply.read(_MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip().splitlines()
        raise RouteError(f"route {route_url} answered {exc.code}: {detail[0] if detail else exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RouteError(f"route {route_url} unreachable: {reason}") from None
    return parse_route_answer(body)


class ServerTarget:
    """Where the client connects: fixed (network.host:port), or asked from a fleet's route.

    With a route, `refresh()` asks it (naming the replica just lost, if any); when the route cannot be
    reached or gives an unusable answer, the last address stays (at first: network.host:port). A
    configured server key file pins the fleet's key: a route naming another key is refused.
    """

    def __init__(self, host: str, port: int, *, route_url: str | None = None, robot: str = "robot",
                 timeout_s: float = 1.0, pinned_key: bytes | None = None):
        self.host, self.port = host, int(port)
        self.route_url = route_url
        self.robot = check_robot_name(robot) if route_url else robot
        self.timeout_s = float(timeout_s)
        self.pinned_key = pinned_key
        self.server_key: bytes | None = None  # from the route, when the fleet runs CurveZMQ
        self.replica: str | None = None
        self.last_error: str | None = None
        self.lost: str | None = None  # the address whose connection was lost, told to the route once
        self.asks = self.errors = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def mark_lost(self) -> None:
        self.lost = self.address

    def refresh(self) -> bool:
        """Ask the route (no-op without one); True when the address came from the route this time."""
        if not self.route_url:
            return False
        lost, self.lost = self.lost, None
        self.asks += 1
        try:
            answer = ask_route(self.route_url, self.robot, failed=lost, timeout_s=self.timeout_s)
            key = None if answer.server_public_key is None else answer.server_public_key.encode("ascii")
            if self.pinned_key is not None and key is not None and key != self.pinned_key:
                raise RouteError("the route names a server key that differs from network.curve.server_public_key")
        except RouteError as exc:
            self.errors += 1
            self.last_error = str(exc)
            return False
        self.host, self.port, self.replica, self.last_error = answer.host, answer.port, answer.replica, None
        self.server_key = key
        return True
