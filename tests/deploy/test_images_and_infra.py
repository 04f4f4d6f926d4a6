"""deploy/'s images, Kafka and PostgreSQL against the project: pinned, built here, consistent.

The image every CRM container runs is the one deploy/Dockerfile builds; the others are pinned
upstream images of the versions the project is tested with. The Kafka topics created ahead of
the relay, the brokers the processes are pointed at and the databases in the store URLs must
be the ones the manifests actually start.
"""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crm.postgres_connections import open_pool
from crm.wire import topic_names
from tests.deploy.manifests import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    ROOT,
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
)

PINNED = re.compile(r"[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?")
"""An upstream image named by a release (PostgreSQL's have two parts, 15.13), never `latest`
or a bare major version, which move under the same name."""


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


def _topic_command(text: str) -> tuple[list[str], int, int]:
    """The topics, partitions and replication a `kafka-topics.sh --create` loop asks for."""
    topics = re.search(r"for topic in ([^;]+);", text)
    partitions = re.search(r"--partitions (\d+)", text)
    replication = re.search(r"--replication-factor (\d+)", text)
    assert topics and partitions and replication, text
    return topics[1].split(), int(partitions[1]), int(replication[1])


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_topics_are_created_as_the_relay_names_and_partitions_them(shape: str) -> None:
    if shape == "compose":
        text = " ".join(compose()["services"]["kafka-topics"]["command"])
        brokers = [name for name in compose()["services"] if re.fullmatch(r"kafka-\d", name)]
    else:
        text = " ".join(
            k8s_named("Job", "kafka-topics")["spec"]["template"]["spec"]["containers"][0]["args"]
        )
        kafka = k8s_named("StatefulSet", "kafka")
        brokers = [f"kafka-{n}" for n in range(kafka["spec"]["replicas"])]
    topics, partitions, replication = _topic_command(text)
    assert topics == topic_names("")
    assert len(brokers) == 3 and replication == 3
    for container in project_containers():
        if container.where.startswith(f"{shape}:"):
            assert int(container.env["CRM_KAFKA_PARTITIONS"]) == partitions, container.where
            hosts = [
                b.split(":")[0].split(".")[0]
                for b in container.env["CRM_KAFKA_BOOTSTRAP"].split(",")
            ]
            assert sorted(hosts) == sorted(brokers), container.where


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
        for variable in ("CRM_EVENT_STORE_URL", "CRM_READ_STORE_URL"):
            url = urlsplit(container.env[variable])
            assert (url.hostname, url.port, url.username) == (host, 5432, env["POSTGRES_USER"])
            assert url.password == password, f"{container.where}: {variable}"
            assert url.path.lstrip("/") in databases, f"{container.where}: {variable}"


def test_both_shapes_create_the_same_view_store_database() -> None:
    compose_sql = "".join(p.read_text() for p in sorted(Path(DEPLOY / "initdb").glob("*.sql")))
    k8s_sql = "".join(k8s_named("ConfigMap", "postgres-initdb")["data"].values())
    assert _create_database(compose_sql) == _create_database(k8s_sql) == ["crm_views"]


def _max_connections(arguments: list[str]) -> int:
    (setting,) = [a for a in arguments if a.startswith("max_connections=")]
    return int(setting.split("=")[1])


@pytest.mark.parametrize("shape", ["compose", "k8s"])
def test_postgres_takes_every_pool_of_every_replica_at_its_largest(shape: str) -> None:
    """Each process opens one pool per PostgreSQL store it reads, of open_pool's default size
    (an estimate: the adapters may size theirs otherwise); all replicas together must fit."""
    pool = inspect.signature(open_pool).parameters["max_size"].default
    needed = 0
    for container in project_containers():
        if container.where.startswith(f"{shape}:"):
            stores = {"event_store_url", "read_store_url"} & reads(container)
            needed += container.replicas * len(stores) * pool
    if shape == "compose":
        arguments = compose()["services"]["postgres"]["command"]
    else:
        (server,) = k8s_named("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"]
        arguments = server["args"]
    reserved = 3  # superuser_reserved_connections, PostgreSQL's default
    assert needed <= _max_connections(arguments) - reserved, f"{needed} connections at most"


def test_the_extras_the_image_can_be_built_with_are_the_projects() -> None:
    """The Dockerfile installs `.[EXTRAS]`; every extra its comments offer must exist."""
    instructions = dockerfile_instructions()
    assert ("ARG", 'EXTRAS=""') in instructions
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert '".${EXTRAS:+[$EXTRAS]}"' in runs
    offered = re.findall(r"EXTRAS=(\w+)", DOCKERFILE.read_text())
    extras = set(pyproject()["project"]["optional-dependencies"]) - {"dev"}
    assert offered and set(offered) <= extras
