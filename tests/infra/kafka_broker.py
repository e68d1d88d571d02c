"""A single-node Apache Kafka (KRaft, combined broker + controller) run from the jars ``make kafka`` fetched.

``KafkaBroker(home, workdir)`` formats a storage directory under ``workdir`` on the first ``start()`` and
listens on 127.0.0.1 at two free ports (client and controller). ``stop()`` ends the JVM (SIGTERM, then
SIGKILL); a later ``start()`` brings it back on the same ports and log directory, with the data it held, which
is what outage tests need. ``start()`` returns once the broker answers a Metadata request with itself in it.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

DEFAULT_VERSION = "4.1.1"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
_STAMP = ".tapwire-kafka-version"
_START_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 20.0
_JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
# Metadata v4: the oldest version every 4.x broker still serves and the newest before flexible encodings.
_METADATA_API_KEY = 3
_METADATA_VERSION = 4

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


class KafkaNotInstalled(RuntimeError):
    """The Kafka jars are not where ``TAPWIRE_KAFKA_HOME`` points."""


def kafka_home() -> Path:
    """Directory whose ``libs/`` holds the broker's jars: ``$TAPWIRE_KAFKA_HOME`` or the Makefile's default.

    Raises ``KafkaNotInstalled`` (telling the reader to run ``make kafka``) when the jars are missing.
    """
    configured = os.environ.get("TAPWIRE_KAFKA_HOME")
    home = (
        Path(configured)
        if configured
        else Path.home() / ".cache" / "tapwire" / f"kafka-{os.environ.get('KAFKA_VERSION', DEFAULT_VERSION)}"
    )
    libs = home / "libs"
    if not (libs / _STAMP).is_file() or not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaNotInstalled(
            f"Apache Kafka jars not found in {libs}: run `make kafka` "
            "(or set TAPWIRE_KAFKA_HOME to a directory that deploy/local/fetch-kafka.sh filled)"
        )
    return home


def java_command(home: Path, main_class: str, *args: str, log4j_config: Path | None = None) -> list[str]:
    """``java`` with a small heap, the fetched jars on the class path and ``main_class`` as entry point."""
    options = list(_JVM_OPTIONS)
    if log4j_config is not None:
        options.append(f"-Dlog4j2.configurationFile={log4j_config}")
    return ["java", *options, "-cp", str(home / "libs" / "*"), main_class, *args]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def metadata_brokers(host: str, port: int, timeout_s: float = 2.0) -> int:
    """Number of brokers a Metadata request to ``host:port`` names; raises ``OSError`` when none answers."""
    client_id = b"tapwire-probe"
    # Request header v1 + Metadata v4 body: all topics (null array), no auto-creation.
    header = struct.pack(">hhih", _METADATA_API_KEY, _METADATA_VERSION, 1, len(client_id)) + client_id
    body = struct.pack(">ib", -1, 0)
    request = header + body
    with socket.create_connection((host, port), timeout=timeout_s) as conn:
        conn.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read_exactly(conn, 4))[0]
        response = _read_exactly(conn, size)
    # correlation id, throttle time, broker array length.
    _correlation, _throttle, brokers = struct.unpack_from(">iii", response)
    count: int = brokers
    return count


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def random_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64. Like Kafka's own ``Uuid.randomUuid``, never one
    that starts with ``-``, which the storage tool's argument parser would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker:
    """One broker JVM over one storage directory; restartable on the same ports."""

    def __init__(self, home: Path, workdir: Path, *, extra_config: dict[str, str] | None = None) -> None:
        self.home = home
        self.workdir = workdir
        self.port = 0
        self.controller_port = 0
        self._extra = dict(extra_config or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise RuntimeError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the JVM and wait until it serves metadata. Raises ``RuntimeError`` (with the log) otherwise."""
        if self.running:
            return
        if not self._formatted:
            self._format()
        with (self.workdir / "stdout.log").open("ab") as out:
            self._process = subprocess.Popen(
                java_command(
                    self.home,
                    MAIN_CLASS,
                    str(self._properties_file),
                    log4j_config=self.workdir / "log4j2.properties",
                ),
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                if metadata_brokers("127.0.0.1", self.port) > 0:
                    return
            except (OSError, struct.error):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Kafka did not become ready on {self.bootstrap}:\n{self._tail()}")

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL when it lingers. Keeps ports and data for ``start()``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, as a crash: no controlled shutdown. Keeps ports and data for ``start()``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)

    @property
    def _properties_file(self) -> Path:
        return self.workdir / "server.properties"

    def _format(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self._properties_file.write_text(self._render_properties())
        (self.workdir / "log4j2.properties").write_text(
            _LOG4J2.format(log=self.log_file, level=os.environ.get("TAPWIRE_KAFKA_LOG_LEVEL", "INFO"))
        )
        cluster_id = random_cluster_id()
        result = subprocess.run(
            java_command(
                self.home,
                STORAGE_TOOL_CLASS,
                "format",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(self._properties_file),
                log4j_config=self.workdir / "log4j2.properties",
            ),
            cwd=self.workdir,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"formatting Kafka storage failed:\n{result.stdout.decode()}\n{result.stderr.decode()}"
            )
        self._formatted = True

    def _render_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            # One node: every internal topic has one replica, and is small so the first group starts fast.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "4",
            "log.segment.bytes": str(64 * 1024 * 1024),
            **self._extra,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.workdir / "stdout.log", self.log_file):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)
