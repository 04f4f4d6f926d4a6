"""A real single-node Apache Kafka broker (KRaft mode) without Docker, for tests and local runs.

Maven resolves the broker's jars once (`deploy/kafka/pom.xml` -> `deploy/kafka/.libs/`); the broker
then runs as a plain `java` child process on 127.0.0.1 with its data, configuration and logs in one
directory, so a restart on the same directory keeps topics and offsets. Stdlib only: tests load this
file by path, and `python deploy/kafka/local_kafka.py` runs a broker in the foreground.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LIBS_DIR = HERE / ".libs"
# Holds the sha256 of the pom the jars were copied for: present and equal means "complete".
MARKER = LIBS_DIR / ".complete"
HOST = "127.0.0.1"
# What kafka.server.KafkaRaftServer logs once the broker is unfenced and its listeners accept.
STARTED_LINE = "Kafka Server started"
JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-Djava.awt.headless=true")
POLL_SECONDS = 0.05

log = logging.getLogger("local_kafka")


class LocalKafkaError(RuntimeError):
    """The jars could not be fetched, or the broker did not start or stop as asked."""


def ensure_jars() -> Path:
    """Copy the broker's jars into `.libs/` unless a copy for the current pom is already there.

    The marker makes a second start skip Maven entirely (it costs seconds even when ~/.m2 is
    warm); a file lock keeps concurrent test sessions from copying over each other.
    """
    want = hashlib.sha256(POM.read_bytes()).hexdigest()
    LIBS_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(LIBS_DIR / ".lock"):
        if _read(MARKER) == want:
            return LIBS_DIR
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError("mvn is not on PATH: Maven fetches the Kafka broker's jars")
        # Jars of an older pom would shadow the new ones on the `*` classpath.
        MARKER.unlink(missing_ok=True)
        for jar in LIBS_DIR.glob("*.jar"):
            jar.unlink()
        log.info("fetching the Kafka broker's jars with Maven into %s", LIBS_DIR)
        command = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
        command += [f"-DoutputDirectory={LIBS_DIR}", "-DincludeScope=runtime"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalKafkaError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        _write_atomically(MARKER, want)
    return LIBS_DIR


def missing_tools() -> list[str]:
    """The programs a start would need but cannot find: tests skip on these rather than fail."""
    missing = []
    try:
        _java()
    except LocalKafkaError:
        missing.append("java")
    fetched = _read(MARKER) == hashlib.sha256(POM.read_bytes()).hexdigest()
    if not fetched and shutil.which("mvn") is None:
        missing.append("mvn")
    return missing


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def new_cluster_id() -> str:
    """A cluster id as `kafka-storage random-uuid` makes one, without starting a JVM for it.

    Kafka's Uuid is 16 random bytes in URL-safe base64 without padding; it never starts with "-"
    so that the id cannot be mistaken for a command-line option.
    """
    while True:
        text = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class LocalKafka:
    """One broker+controller process on 127.0.0.1, its state in `data_dir`.

    Ports given as 0 are picked once, here, so `restart()` comes back on the same addresses that
    clients were given. The child dies with the thread that started it (Linux), so a test run
    killed hard does not leave a broker behind.
    """

    def __init__(self, data_dir: Path, port: int = 0, controller_port: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._lock: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def bootstrap(self) -> str:
        """The `bootstrap.servers` value for clients."""
        return f"{HOST}:{self.port}"

    @property
    def log_dir(self) -> Path:
        """Where the broker keeps partitions and the KRaft metadata log."""
        return self.data_dir / "logs"

    @property
    def broker_log(self) -> Path:
        """The broker's log4j log, appended to across restarts."""
        return self.data_dir / "broker.log"

    @property
    def broker_out(self) -> Path:
        """The JVM's stdout and stderr: crashes before log4j is up land here."""
        return self.data_dir / "broker.out"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive (not whether it serves: `start` waits for that)."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60) -> None:
        """Start the broker and return once it serves clients, or raise with its log's tail."""
        if self.running:
            raise LocalKafkaError(f"the broker on {self.bootstrap} is already running")
        deadline = time.monotonic() + timeout
        libs = ensure_jars()
        java = _java()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        try:
            self._launch(java, libs)
            self._wait_until_serving(deadline)
        except BaseException:
            self.stop()  # also releases the data dir
            raise

    def stop(self, timeout: float = 30) -> None:
        """Shut the broker down cleanly (SIGTERM), killing it if it hangs past `timeout`."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("the broker on %s ignored SIGTERM; killing it", self.bootstrap)
                    process.kill()
                    process.wait()
        finally:
            if self._output is not None:
                self._output.close()
                self._output = None
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def restart(self, timeout: float = 60) -> None:
        """Stop and start again on the same ports and data, as a broker crash-and-recovery would."""
        self.stop()
        self.start(timeout)

    def wait(self) -> int:
        """Block until the broker exits by itself; its exit code."""
        if self._process is None:
            raise LocalKafkaError("the broker was not started")
        return self._process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the JVM's output and of the broker's log, for error messages."""
        parts = []
        for path in (self.broker_out, self.broker_log):
            text = _read(path)
            if text:
                tail = "\n".join(text.splitlines()[-lines:])
                parts.append(f"--- {path} (last {lines} lines)\n{tail}")
        return "\n".join(parts) or "(the broker wrote no output)"

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, java: str, libs: Path) -> None:
        """Write the configuration, format the storage on first use, start the JVM."""
        properties = self.data_dir / "server.properties"
        log4j = self.data_dir / "log4j.properties"
        _write_atomically(properties, self._server_properties())
        _write_atomically(log4j, self._log4j_properties())
        classpath = ["-cp", f"{libs}/*", f"-Dlog4j.configuration=file:{log4j}"]
        if not (self.log_dir / "meta.properties").exists():
            self._format(java, classpath, properties)
        # The log is appended to across restarts: only lines after this offset belong to this start.
        self._log_offset = self.broker_log.stat().st_size if self.broker_log.exists() else 0
        self._output = self.broker_out.open("wb")
        self._process = subprocess.Popen(
            [java, *JVM_OPTIONS, *classpath, "kafka.Kafka", str(properties)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C on the terminal reaches us, and we decide how the broker stops.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _lock_data_dir(self) -> None:
        """Refuse a second broker on the same directory before it truncates the first one's files.

        Kafka locks its log dirs too, but only after our files were rewritten, and its refusal is
        buried in a shared log; this lock fails fast and says why.
        """
        if self._lock is not None:
            return
        lock = (self.data_dir / ".local_kafka.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise LocalKafkaError(f"{self.data_dir} is in use by another running broker") from None
        self._lock = lock

    def _format(self, java: str, classpath: list[str], properties: Path) -> None:
        """Write meta.properties and the bootstrap checkpoint: a KRaft node refuses blank dirs."""
        command = [java, *classpath, "kafka.tools.StorageTool", "format"]
        command += ["--ignore-formatted", "-t", new_cluster_id(), "-c", str(properties)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalKafkaError(
                f"formatting {self.log_dir} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def _wait_until_serving(self, deadline: float) -> None:
        """Poll the client port, then this start's log for the line written once it serves.

        An open port alone could be another process (free ports are picked racily) and says
        nothing about the KRaft quorum; the line comes after the broker is unfenced and accepting.
        """
        port_open = False
        while True:
            if not self.running:
                code = None if self._process is None else self._process.returncode
                cause = _first_error(_read(self.broker_log, self._log_offset))
                raise LocalKafkaError(
                    f"the broker exited with code {code} while starting: {cause}\n{self.log_tail()}"
                )
            port_open = port_open or _accepts(HOST, self.port)
            if port_open and STARTED_LINE in _read(self.broker_log, self._log_offset):
                return
            if time.monotonic() > deadline:
                raise LocalKafkaError(
                    f"the broker on {self.bootstrap} did not start in time\n{self.log_tail()}"
                )
            time.sleep(POLL_SECONDS)

    def _server_properties(self) -> str:
        """A combined broker+controller node; replication factors of 1 since it is alone."""
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # The default 50 partitions make the first transactional producer wait for all of them.
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        header = "# Written by deploy/kafka/local_kafka.py on every start; edits are overwritten.\n"
        return header + "".join(f"{key}={value}\n" for key, value in settings.items())

    def _log4j_properties(self) -> str:
        """Everything at INFO into one file; request logging stays at WARN as in Kafka's default."""
        return "".join(
            f"{line}\n"
            for line in (
                "log4j.rootLogger=INFO, file",
                "log4j.appender.file=org.apache.log4j.FileAppender",
                f"log4j.appender.file.File={self.broker_log}",
                "log4j.appender.file.Append=true",
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
                "log4j.logger.kafka.request.logger=WARN, file",
                "log4j.additivity.kafka.request.logger=false",
            )
        )


def _java() -> str:
    """The java executable: $JAVA_HOME's if set, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError("java is not on PATH (and JAVA_HOME is not set): Kafka needs Java 17")
    return java


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child when its parent goes away (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _first_error(log_text: str) -> str:
    """The first ERROR of a start and its root cause: the tail is mostly shutdown noise."""
    lines = log_text.splitlines()
    errors = [index for index, line in enumerate(lines) if "] ERROR " in line]
    if not errors:
        return "see the log below"
    first = errors[0]
    end = errors[1] if len(errors) > 1 else len(lines)
    causes = [line.strip() for line in lines[first:end] if line.startswith("Caused by:")]
    return " / ".join([lines[first], *causes[-1:]])


def _accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _read(path: Path, offset: int = 0) -> str:
    """The file's text from `offset`, "" if it does not exist (yet)."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of it."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(text)
    scratch.replace(path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the block."""
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    """Run a broker in the foreground until Ctrl-C or SIGTERM, then stop it cleanly."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9092, help="client port (0: a free one)")
    parser.add_argument(
        "--controller-port", type=int, default=9093, help="KRaft controller port (0: a free one)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/kafka"), help="state and logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGTERM takes the Ctrl-C path, so both end in the same clean stop. SIGINT is set too: a
    # shell starting us in the background (`make kafka &`) hands it down ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    kafka = LocalKafka(args.data_dir, args.port, args.controller_port)
    try:
        started = time.monotonic()
        kafka.start()
        print(
            f"Kafka broker listening on {kafka.bootstrap} (controller {HOST}:"
            f"{kafka.controller_port}), started in {time.monotonic() - started:.1f}s; "
            f"data in {kafka.data_dir}, log in {kafka.broker_log}. Ctrl-C stops it.",
            flush=True,
        )
        code = kafka.wait()
        print(f"the broker exited by itself with code {code}\n{kafka.log_tail()}", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        print("stopping the broker...", flush=True)
        # A second Ctrl-C must not leave the broker orphaned half-way through its shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kafka.stop()
        print("stopped", flush=True)
        return 0
    except LocalKafkaError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        kafka.stop()


if __name__ == "__main__":
    sys.exit(main())
