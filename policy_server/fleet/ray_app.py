"""The fleet on Ray Serve: PolicyServer replicas, the registry actor and the HTTP route.

Robot traffic never passes through Ray: each replica runs a whole PolicyServer (its own ZeroMQ ROUTER on
its node's address, its own sessions and batching) and robots connect to it directly. Ray is the control
plane: Serve places, restarts and scales the replicas; the registry (a named actor) knows which are live
and which robot goes where; the route (Serve's HTTP proxy) answers a robot's one GET with host:port.
Imports ray: install the extra `vla-async[ray]`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import ray
import zmq.auth
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from policy_server.backend import create_backend
from policy_server.fleet.autoscale import FleetAutoscalingPolicy
from policy_server.fleet.registry import FleetRegistry, NoReplicaError, ReplicaLoad, route_answer
from policy_server.server import PolicyServer
from vla_async.config import ServerConfig
from vla_async.route import check_robot_name
from vla_async.sockets import BindError

log = logging.getLogger("policy_server.fleet")

NAMESPACE = "vla_async"
REGISTRY_NAME = "vla_fleet_registry"
REPLICAS_APP = "vla-fleet-replicas"
ROUTE_APP = "vla-fleet-route"
REPORT_INTERVAL_S = 0.2


@dataclass(frozen=True)
class FleetOptions:
    """How many replicas and where (the server config itself is a ServerConfig)."""

    replicas: int = 1  # fixed count (ignored with autoscale)
    autoscale: tuple[int, int] | None = None  # (min, max) replicas from the registry's load
    robots_per_replica: int = 8
    max_queue_depth: float = 0.0
    max_latency_ms: float = 0.0
    ports: tuple[int, int] | None = None  # replicas bind the first free port in this range (None: any)
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 0.5
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    upscale_delay_s: float = 2.0
    downscale_delay_s: float = 20.0

    def deployment_options(self) -> dict[str, Any]:
        actor = {"num_cpus": self.cpus_per_replica, "num_gpus": self.gpus_per_replica,
                 # the replica pushes its registry load to Serve's autoscaler every second (default 10 s)
                 "runtime_env": {"env_vars": {"RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"}}}
        opts: dict[str, Any] = {"ray_actor_options": actor, "health_check_period_s": 1.0,
                                "health_check_timeout_s": 10.0, "max_ongoing_requests": 4}
        if self.autoscale is None:
            opts["num_replicas"] = self.replicas
        else:
            low, high = self.autoscale
            opts["autoscaling_config"] = {
                "min_replicas": low, "max_replicas": high, "initial_replicas": low,
                "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": 2.0,
                "policy": {"policy_function": "policy_server.fleet.autoscale:FleetAutoscalingPolicy",
                           "policy_kwargs": {"robots_per_replica": self.robots_per_replica,
                                             "max_queue_depth": self.max_queue_depth,
                                             "max_latency_ms": self.max_latency_ms}},
            }
        return opts


# ---------------------------------------------------------------------- registry actor


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1)
class RegistryActor:
    """The FleetRegistry as a named, detached actor (one call at a time: no locks needed)."""

    def __init__(self) -> None:
        self.registry = FleetRegistry()

    def register(self, replica_id: str, host: str, port: int, public_key: str | None, pid: int, node: str) -> None:
        self.registry.register(replica_id, host, port, public_key=public_key, pid=pid, node=node)
        self.registry.forget_dead()

    def unregister(self, replica_id: str) -> None:
        self.registry.unregister(replica_id)

    def report(self, replica_id: str, load: dict) -> int:
        return self.registry.report(replica_id, ReplicaLoad(**load))

    def assign(self, robot: str, failed: str | None) -> dict:
        try:
            return route_answer(self.registry.assign(robot, failed))
        except NoReplicaError as exc:
            return {"error": str(exc)}

    def status(self) -> dict:
        return self.registry.status()


def get_registry() -> Any:
    return ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)


def connect(address: str | None) -> None:
    """Join the running Ray cluster (`ray start --head` first) as a driver in the fleet's namespace."""
    ray.init(address=address or "auto", namespace=NAMESPACE, log_to_driver=False)


def node_address() -> str:
    """The address this worker's Ray node was started with (`ray start --node-ip-address`)."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return str(node["NodeManagerAddress"])
    return ray.util.get_node_ip_address()


# ---------------------------------------------------------------------- replicas


def _start_server(config: ServerConfig, ports: tuple[int, int] | None) -> PolicyServer:
    """A started PolicyServer on this node's address: any free port, or the first free one in `ports`."""
    backend = create_backend(config.backend)
    candidates = [None] if ports is None else list(range(ports[0], ports[1] + 1))
    for port in candidates:
        server = PolicyServer(config, backend, port=0 if port is None else port, name="vla-async fleet")
        try:
            return server.start()
        except BindError:
            continue
    backend.close()
    raise BindError(f"no free port in {ports[0]}-{ports[1]} on {config.network.host}")  # type: ignore[index]


def _public_key(config: ServerConfig) -> str | None:
    curve = config.network.curve
    if not curve.enabled or not curve.server_secret_key:
        return None
    return zmq.auth.load_certificate(curve.server_secret_key)[0].decode("ascii")


@serve.deployment(name="PolicyReplica")
class PolicyReplica:
    """One PolicyServer on its node's address; reports load and thread health to the registry."""

    def __init__(self, server_config: dict, ports: tuple[int, int] | None = None) -> None:
        host = node_address()
        config = ServerConfig.model_validate(server_config)
        config = config.model_copy(update={"network": config.network.model_copy(update={"host": host})})
        self.server = _start_server(config, ports)
        context = serve.get_replica_context()
        self.replica_id = str(getattr(context.replica_id, "unique_id", context.replica_id))
        self.registry = get_registry()
        ray.get(self.registry.register.remote(self.replica_id, host, self.server.port, _public_key(config),
                                              os.getpid(), host))
        self._robots = 0
        self._stop = threading.Event()
        self._reporter = threading.Thread(target=self._report_loop, name="fleet-report", daemon=True)
        self._reporter.start()
        log.info("replica %s serving on %s", self.replica_id, self.server.endpoint)

    def _load(self) -> dict:
        robots = tuple(s["client_name"] for s in self.server.session_stats())
        return {"robots": robots, "queue_depth": self.server.queue_depth,
                "latency_ms": self.server.recent_batch_ms, "problem": self.server.health()}

    def _report_loop(self) -> None:
        while not self._stop.wait(REPORT_INTERVAL_S):
            try:
                counted = ray.get(self.registry.report.remote(self.replica_id, self._load()), timeout=5.0)
                if counted < 0:  # the registry restarted: register again
                    self.registry.register.remote(self.replica_id, self.server.config.network.host,
                                                  self.server.port, _public_key(self.server.config),
                                                  os.getpid(), self.server.config.network.host)
                self._robots = max(0, counted)
            except Exception as exc:  # noqa: BLE001 - the registry may be restarting: report again next time
                log.warning("report to the fleet registry failed: %s", exc)
                self.registry = _try(get_registry) or self.registry

    def check_health(self) -> None:
        """Serve's health check: the server and both of its threads must be alive (else Serve replaces us)."""
        problem = self.server.health()
        if problem is not None:
            raise RuntimeError(problem)
        if not self._reporter.is_alive():
            raise RuntimeError("the fleet report thread died")

    def record_autoscaling_stats(self) -> dict[str, float]:
        """The registry's load on this replica for the fleet's autoscaling policy (autoscale.py)."""
        return {"robots": float(self._robots), "queue_depth": float(self.server.queue_depth),
                "latency_ms": float(self.server.recent_batch_ms)}

    def __call__(self, request: Request) -> dict:
        return {"replica": self.replica_id, "endpoint": self.server.endpoint, "stats": self.server.stats}

    def __del__(self) -> None:
        """Serve's graceful shutdown (scale-down, `fleet down`): leave the registry, stop the server."""
        if hasattr(self, "_stop"):
            self._stop.set()
            _try(lambda: self.registry.unregister.remote(self.replica_id))
        if hasattr(self, "server"):
            self.server.stop()
            self.server.backend.close()


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------------- route


@serve.deployment(name="FleetRoute", num_replicas=1, ray_actor_options={"num_cpus": 0})
class FleetRoute:
    """GET /route?robot=NAME[&failed=HOST:PORT] → {host, port, replica, server_public_key}; GET /status."""

    def __init__(self) -> None:
        self.registry = get_registry()

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/")
        if path.endswith("/status"):
            return JSONResponse(await self.registry.status.remote())
        if not path.endswith("/route"):
            return JSONResponse({"error": "use GET /route?robot=NAME or GET /status"}, status_code=404)
        robot = request.query_params.get("robot", "")
        failed = request.query_params.get("failed") or None
        try:
            check_robot_name(robot)
            if failed is not None and len(failed) > 300:
                raise ValueError("failed= is too long")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        answer = await self.registry.assign.remote(robot, failed)
        return JSONResponse(answer, status_code=503 if "error" in answer else 200)


# ---------------------------------------------------------------------- deploy / tear down


def deploy(config: ServerConfig, options: FleetOptions) -> str:
    """Start (or update) the fleet on the connected Ray cluster; returns the route URL."""
    RegistryActor.options(name=REGISTRY_NAME, namespace=NAMESPACE, lifetime="detached",
                          get_if_exists=True).remote()
    serve.start(http_options={"host": options.http_host, "port": options.http_port})
    replicas = PolicyReplica.options(**options.deployment_options()).bind(config.model_dump(), options.ports)
    serve.run(replicas, name=REPLICAS_APP, route_prefix=None)
    serve.run(FleetRoute.bind(), name=ROUTE_APP, route_prefix="/")
    return f"http://{options.http_host}:{options.http_port}/route"


def wait_for_replicas(count: int, timeout_s: float) -> dict:
    """The registry's status once `count` replicas are live (TimeoutError after `timeout_s`)."""
    end = time.monotonic() + timeout_s
    while True:
        status = fleet_status()
        if sum(1 for r in status["replicas"] if r["live"]) >= count:
            return status
        if time.monotonic() > end:
            raise TimeoutError(f"{count} live replicas not reached within {timeout_s:.0f} s: {status['replicas']}")
        time.sleep(0.2)


def fleet_status() -> dict:
    """The registry's snapshot (ValueError when no fleet runs on this cluster)."""
    return ray.get(get_registry().status.remote())


def tear_down() -> None:
    """Delete the fleet's applications and its registry (Serve itself and the cluster stay)."""
    for app in (ROUTE_APP, REPLICAS_APP):
        _try(lambda app=app: serve.delete(app))
    registry = _try(get_registry)
    if registry is not None:
        ray.kill(registry)


__all__ = ["FleetAutoscalingPolicy", "FleetOptions", "PolicyReplica", "FleetRoute", "RegistryActor", "deploy",
           "tear_down", "wait_for_replicas", "get_registry", "NAMESPACE"]
