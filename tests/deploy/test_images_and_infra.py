"""deploy/'s images, Kafka and PostgreSQL against the project: pinned, built here, consistent.

The image every CRM container runs is the one deploy/Dockerfile builds; the others are pinned
upstream images of the versions the project is tested with. The Kafka topics created ahead of
the relay, the brokers the processes are pointed at and the databases in the store URLs must
be the ones the manifests actually start.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from crm.eventstore.factory import open_event_store
from crm.personal.keys import MasterKey
from crm.personal.postgres_keys import PostgresKeyStore
from crm.postgres_connections import is_postgres
from projections.store.factory import open_view_store
from relay.postgres_checkpoint import PostgresRelayCheckpoint
from services.sla.postgres_checkpoint import PostgresDeadlineCheckpoint
from tests.deploy.manifests import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    ROOT,
    Container,
    compose,
    compose_containers,
    console_scripts,
    dockerfile_instructions,
    interpolate,
    k8s_containers,
    k8s_named,
    k8s_objects,
    listen_port,
    project_containers,
    project_image,
    pyproject,
    reads,
    settings_of,
)

PINNED = re.compile(r"[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?")
"""An upstream image named by a release (PostgreSQL's have two parts, 15.13), never `latest`
or a bare major version, which move under the same name."""
POSTGRES_SETTINGS = {
    "event_store_url",
    "read_store_url",
    "relay_checkpoint_url",
    "deadline_checkpoint_url",
    "key_store_url",
}
"""The settings naming a PostgreSQL database in deploy/: both stores, both checkpoints and the
customers' data keys."""


def upstream_images() -> set[str]:
    every = {c.image for c in [*compose_containers(), *k8s_containers()]}
    return every - {project_image()}


def test_every_image_is_the_project_image_or_a_pinned_upstream_release() -> None:
    assert project_image() == "crm-case-history:0.1.0"
    for image in upstream_images():
        assert PINNED.fullmatch(image), f"{image} is not pinned to a release"
    assert {c.image for c in compose_containers()} == {c.image for c in k8s_containers()}


def test_kafka_is_the_release_the_tests_run_and_postgres_is_15() -> None:
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    (tested,) = re.findall(r"<kafka.version>([^<]+)</kafka.version>", pom)
    images = {image.split(":")[0]: image.split(":")[1] for image in upstream_images()}
    assert images["apache/kafka"] == tested
    assert images["postgres"].startswith("15.")


def test_compose_builds_the_project_image_from_the_dockerfile() -> None:
    for name, service in compose()["services"].items():
        if service["image"] == project_image():
            build = service["build"]
            assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
            assert (ROOT / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile", name


def test_the_dockerfile_copies_sources_that_exist_and_its_ignore_file_lets_in() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = [args.split() for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    sources = [parts[0] for parts in copies if not parts[0].startswith("--from")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by the ignore file"


def test_the_dockerfile_builds_on_one_pinned_base_and_runs_a_console_script() -> None:
    instructions = dockerfile_instructions()
    bases = {args.split()[0] for keyword, args in instructions if keyword == "FROM"}
    (base,) = bases
    assert PINNED.fullmatch(base), base
    assert base.startswith("python:3.11."), "the Python release mypy and CI check"
    (cmd,) = [args for keyword, args in instructions if keyword == "CMD"]
    assert shlex.split(cmd.strip("[]").replace(",", " "))[0] in console_scripts()


def test_the_dockerfile_generates_protos_with_the_pinned_grpcio_tools() -> None:
    dev = {
        line.split("==")[0]: line.split("==")[1]
        for line in pyproject()["project"]["optional-dependencies"]["dev"]
    }
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    (pinned,) = re.findall(r"grpcio-tools==(\S+)", runs)
    assert pinned == dev["grpcio-tools"]
    assert "grpc_tools.protoc -I protos" in runs


def test_the_image_exposes_and_runs_as_what_the_manifests_expect() -> None:
    instructions = dockerfile_instructions()
    (exposed,) = [int(args) for keyword, args in instructions if keyword == "EXPOSE"]
    (user,) = [args for keyword, args in instructions if keyword == "USER"]
    for container in project_containers():
        if container.script == "crm-server":
            assert listen_port(container.env["CRM_LISTEN"]) == exposed, container.where
    for kind in ("Deployment",):
        for workload in k8s_objects(kind):
            context = workload["spec"]["template"]["spec"]["securityContext"]
            assert f"{context['runAsUser']}:{context['runAsGroup']}" == user


def _brokers(shape: str) -> dict[str, dict[str, str]]:
    """Each Kafka node's host name and the settings it starts with (pod-derived ones left out)."""
    if shape == "compose":
        return {
            name: {k: str(v) for k, v in service["environment"].items()}
            for name, service in compose()["services"].items()
            if re.fullmatch(r"kafka-\d", name)
        }
    kafka = k8s_named("StatefulSet", "kafka")
    (container,) = kafka["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e}
    return {f"kafka-{n}": env for n in range(kafka["spec"]["replicas"])}


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_the_processes_that_create_topics_replicate_them_on_every_broker(shape: str) -> None:
    """No job creates the topics ahead: the relay and the projection workers do, when missing
    (crm/kafka_admin.py), with CRM_KAFKA_REPLICATION_FACTOR copies of each partition."""
    brokers = _brokers(shape)
    assert len(brokers) == 3
    for env in brokers.values():
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        # With acks=all, one broker may be lost without refusing writes or losing acked ones.
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == len(brokers) - 1
    creators = set()
    for container in project_containers():
        if not container.where.startswith(f"{shape}:"):
            continue
        settings = settings_of(container)
        if "kafka_replication_factor" in reads(container):
            creators.add(container.script)
            assert settings.kafka_replication_factor == len(brokers), container.where
        if "kafka_bootstrap" in reads(container):
            hosts = [b.split(":")[0].split(".")[0] for b in settings.kafka_bootstrap.split(",")]
            assert sorted(hosts) == sorted(brokers), container.where
            assert settings.kafka_partitions == 12, container.where
    assert creators == {"crm-relay", "crm-projection-worker"}
    assert not [job for job in k8s_objects("Job") if "topic" in job["metadata"]["name"]]


def test_compose_starts_the_topic_creators_once_every_broker_is_healthy() -> None:
    """Replication 3 needs all three brokers: a creator started earlier would retry, then exit."""
    brokers = set(_brokers("compose"))
    for container in project_containers():
        if container.where.startswith("compose:") and "kafka_replication_factor" in reads(
            container
        ):
            waits = container.raw["depends_on"]
            for broker in brokers:
                assert waits[broker]["condition"] == "service_healthy", container.where


def test_compose_runs_three_kraft_nodes_that_vote_for_one_another() -> None:
    nodes = {n: s for n, s in compose()["services"].items() if re.fullmatch(r"kafka-\d", n)}
    voters = {f"{s['environment']['KAFKA_NODE_ID']}@{name}:9093" for name, s in nodes.items()}
    assert len(voters) == 3
    for name, service in nodes.items():
        env = service["environment"]
        assert "controller" in env["KAFKA_PROCESS_ROLES"].split(",")
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"


def test_kubernetes_runs_three_kraft_nodes_named_by_their_pod_index() -> None:
    kafka = k8s_named("StatefulSet", "kafka")
    (container,) = kafka["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KAFKA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    service = kafka["spec"]["serviceName"]
    expected = {f"{n}@kafka-{n}.{service}:9093" for n in range(kafka["spec"]["replicas"])}
    assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"]["value"].split(",")) == expected
    assert env["KAFKA_ADVERTISED_LISTENERS"]["value"] == f"PLAINTEXT://$(POD_NAME).{service}:9092"


def _create_database(sql: str) -> list[str]:
    return re.findall(r"CREATE DATABASE (\w+)", sql)


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_store_urls_name_the_postgres_they_start_and_its_databases(shape: str) -> None:
    if shape == "compose":
        postgres = compose()["services"]["postgres"]
        env = {k: interpolate(str(v)) for k, v in postgres["environment"].items()}
        (initdb,) = [v.split(":")[0] for v in postgres["volumes"] if "initdb" in v]
        sql = "".join(p.read_text() for p in sorted((COMPOSE.parent / initdb).glob("*.sql")))
        password, host = env["POSTGRES_PASSWORD"], "postgres"
    else:
        (container,) = k8s_named("StatefulSet", "postgres")["spec"]["template"]["spec"][
            "containers"
        ]
        env = {e["name"]: e.get("value") for e in container["env"]}
        sql = "".join(k8s_named("ConfigMap", "postgres-initdb")["data"].values())
        password = k8s_named("Secret", "postgres")["stringData"]["POSTGRES_PASSWORD"]
        host = k8s_named("Service", "postgres")["metadata"]["name"]
    databases = {env["POSTGRES_DB"], *_create_database(sql)}
    for container in project_containers():
        if not container.where.startswith(f"{shape}:"):
            continue
        for setting in sorted(POSTGRES_SETTINGS & reads(container)):
            variable = f"CRM_{setting.upper()}"
            url = urlsplit(container.env[variable])
            assert (url.hostname, url.port, url.username) == (host, 5432, env["POSTGRES_USER"])
            assert url.password == password, f"{container.where}: {variable}"
            assert url.path.lstrip("/") in databases, f"{container.where}: {variable}"


def test_both_shapes_create_the_same_view_checkpoint_and_key_databases() -> None:
    compose_sql = "".join(p.read_text() for p in sorted(Path(DEPLOY / "initdb").glob("*.sql")))
    data = k8s_named("ConfigMap", "postgres-initdb")["data"]
    k8s_sql = "".join(data[name] for name in sorted(data))
    assert sorted(p.name for p in Path(DEPLOY / "initdb").glob("*.sql")) == sorted(data)
    expected = ["crm_views", "crm_checkpoints", "crm_keys"]
    assert _create_database(compose_sql) == _create_database(k8s_sql) == expected


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_postgres_is_ready_only_once_the_last_database_exists(shape: str) -> None:
    """The image runs initdb/ in a server on its socket only: a check over TCP that names the
    last database created cannot pass before the scripts are done."""
    if shape == "compose":
        check = compose()["services"]["postgres"]["healthcheck"]["test"][1].split()
    else:
        (server,) = k8s_named("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"]
        check = server["readinessProbe"]["exec"]["command"]
    assert check[0] == "pg_isready"
    assert check[check.index("-h") + 1] == "127.0.0.1"
    assert check[check.index("-d") + 1] == "crm_keys"  # initdb/30-key-store-database.sql


def _max_connections(arguments: list[str]) -> int:
    (setting,) = [a for a in arguments if a.startswith("max_connections=")]
    return int(setting.split("=")[1])


class _Asked(BaseException):
    """Raised by the stand-in for open_pool: the size an adapter asks for is all a test wants.
    A BaseException, so that no adapter's error handling turns it into a startup error."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        self.max_size = max_size


def _key_store(url: str) -> object:
    return PostgresKeyStore(url, "key_store_url", MasterKey(bytes(32)))


OPENERS: dict[str, tuple[str, Callable[[str], object], int]] = {
    # setting: (module whose open_pool the adapter calls, what bootstrap opens the URL with,
    # connections the process holds beside that pool)
    "event_store_url": ("crm.eventstore.postgres", open_event_store, 1),  # LISTEN for appends
    "read_store_url": ("projections.store.postgres", open_view_store, 1),  # LISTEN for views
    "relay_checkpoint_url": ("relay.postgres_checkpoint", PostgresRelayCheckpoint, 1),  # lease
    "deadline_checkpoint_url": ("services.sla.postgres_checkpoint", PostgresDeadlineCheckpoint, 1),
    "key_store_url": ("crm.personal.postgres_keys", _key_store, 0),
}
"""Every PostgreSQL URL a process may read. The one connection beside each pool: the event
store's and the view store's LISTEN thread (crm/eventstore/postgres_listen.py,
projections/store/postgres_listen.py), and the lease's session in a checkpoint's database
(crm/postgres_lease.py), held by the active copy and tried, then closed, by a standby."""


def _pool_size(setting: str, url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """The most connections the adapter opened for `url` pools, as it asks open_pool for them."""
    module, opener, _ = OPENERS[setting]

    def asked(url: str, field: str, *, label: str, max_size: int = 8) -> NoReturn:
        raise _Asked(max_size)

    monkeypatch.setattr(f"{module}.open_pool", asked)
    with pytest.raises(_Asked) as raised:
        opener(url)
    return raised.value.max_size


def _connections(container: Container, monkeypatch: pytest.MonkeyPatch) -> int:
    """The PostgreSQL connections one copy of the container's process may hold at once."""
    settings = settings_of(container)
    total = 0
    for setting in sorted(POSTGRES_SETTINGS & reads(container)):
        url = getattr(settings, setting)
        if is_postgres(url):
            total += _pool_size(setting, url, monkeypatch) + OPENERS[setting][2]
    return total


def test_the_readme_gives_the_pool_sizes_the_adapters_ask_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """deploy/README.md's connection table, row by row, against what each adapter opens."""
    assert set(OPENERS) == POSTGRES_SETTINGS
    readme = (DEPLOY / "README.md").read_text()
    url = "postgresql://crm@postgres:5432/crm"
    for setting, (_, _, beside) in OPENERS.items():
        row = re.search(rf"^  \| `CRM_{setting.upper()}` \| (\d+) \(.*?\| (\d+)[ ,]", readme, re.M)
        assert row, f"deploy/README.md has no connection row for CRM_{setting.upper()}"
        assert int(row[1]) == _pool_size(setting, url, monkeypatch), setting
        assert int(row[2]) == beside, setting
    (relay,) = [c for c in project_containers() if c.where == "compose:relay"]
    event_store, checkpoint = (
        _pool_size(s, url, monkeypatch) for s in ("event_store_url", "relay_checkpoint_url")
    )
    assert _connections(relay, monkeypatch) == (event_store + 1) + (checkpoint + 1)


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_postgres_takes_every_connection_of_every_replica_at_its_largest(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process holds, for each PostgreSQL URL it reads, its adapter's pool at its largest
    plus the one connection beside it; every replica together must fit under max_connections.
    An upper bound: a server counts the deadline checkpoint it opens only with
    CRM_DEADLINES=in-process, and pools shrink back to one connection when idle."""
    needed = sum(
        container.replicas * _connections(container, monkeypatch)
        for container in project_containers()
        if container.where.startswith(f"{shape}:")
    )
    if shape == "compose":
        arguments = compose()["services"]["postgres"]["command"]
    else:
        (server,) = k8s_named("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"]
        arguments = server["args"]
    reserved = 3  # superuser_reserved_connections, PostgreSQL's default
    assert needed <= _max_connections(arguments) - reserved, f"{needed} connections at most"
    stated = f"compose needs {needed}" if shape == "compose" else f"({needed} as `tests/deploy`"
    assert stated in " ".join((DEPLOY / "README.md").read_text().split()), (
        f"deploy/README.md should give {needed} for {shape}"
    )
    assert f"max_connections={_max_connections(arguments)}`" in (DEPLOY / "README.md").read_text()


def _server_setting(arguments: list[str], name: str) -> int:
    (setting,) = [a for a in arguments if a.startswith(f"{name}=")]
    return int(setting.split("=")[1])


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_postgres_drops_a_vanished_clients_session_and_its_lease_within_a_minute(
    shape: str,
) -> None:
    """A relay or deadline worker whose node is lost leaves no FIN: without keepalives its
    session, and the advisory lock electing it, would stay for the OS default of two hours."""
    if shape == "compose":
        arguments = compose()["services"]["postgres"]["command"]
    else:
        (server,) = k8s_named("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"]
        arguments = server["args"]
    idle, interval, count = (
        _server_setting(arguments, f"tcp_keepalives_{name}")
        for name in ("idle", "interval", "count")
    )
    assert 0 < idle + interval * count <= 60


def test_the_extras_the_image_can_be_built_with_are_the_projects() -> None:
    """The Dockerfile installs `.[EXTRAS]`; every extra its comments offer must exist."""
    instructions = dockerfile_instructions()
    assert ("ARG", 'EXTRAS=""') in instructions
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert '".${EXTRAS:+[$EXTRAS]}"' in runs
    offered = re.findall(r"EXTRAS=(\w+)", DOCKERFILE.read_text())
    extras = set(pyproject()["project"]["optional-dependencies"]) - {"dev"}
    assert offered and set(offered) <= extras
