"""deploy/ against the code: every command, flag, variable, port and image it names exists.

Both shapes (compose, Kubernetes) are read into one list of containers; each container of the
project's image must run a console script of pyproject.toml with arguments and an environment
its own parser accepts, as the process would at start.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from crm.postgres_connections import is_postgres
from crm.settings import ALL, SERVICE_NAMES, SettingError
from projections.catalogue import PROJECTION_NAMES
from tests.deploy.manifests import (
    CRM_VARIABLE,
    Container,
    compose_containers,
    console_scripts,
    deploy_texts,
    k8s_containers,
    k8s_documents,
    k8s_named,
    k8s_objects,
    listen_port,
    project_containers,
    reads,
    secret_files,
    served,
    settings_of,
)

SHAPES = {"compose": compose_containers, "k8s": k8s_containers}
SHARED_STORE_SCHEMES = ("postgresql", "kurrentdb")
"""Stores several processes share across machines; SQLite files cannot be shared that way."""
CHECKPOINTS = {"relay_checkpoint_url", "deadline_checkpoint_url"}


def _ids(containers: list[Container]) -> list[str]:
    return [c.where for c in containers]


def test_every_crm_variable_deploy_names_is_a_declared_setting() -> None:
    declared = {setting.env for setting in ALL}
    for path, text in deploy_texts().items():
        unknown = set(CRM_VARIABLE.findall(text)) - declared
        assert not unknown, f"deploy/{path} names {sorted(unknown)}, which crm/settings.py lacks"


@pytest.mark.parametrize("container", project_containers(), ids=_ids(project_containers()))
def test_each_project_container_runs_a_console_script_its_parser_accepts(
    container: Container,
) -> None:
    assert container.script in console_scripts(), f"{container.where}: not a console script"
    try:
        settings_of(container)
    except SettingError as exc:
        raise AssertionError(f"{container.where}: {exc}") from None


@pytest.mark.parametrize("shape", SHAPES)
def test_each_service_has_a_server_of_its_own_and_each_projection_a_worker(shape: str) -> None:
    containers = [c for c in project_containers() if c.where.startswith(f"{shape}:")]
    servers = [served(c) for c in containers if c.script == "crm-server"]
    assert all(len(services) == 1 for services in servers), servers
    assert sorted(s for (s,) in servers) == sorted(SERVICE_NAMES)
    workers = [c for c in containers if c.script == "crm-projection-worker"]
    assert sorted(settings_of(c).projection for c in workers) == sorted(PROJECTION_NAMES)
    for script in ("crm-relay", "crm-deadline-worker"):
        # One active copy and a standby: the lease in the checkpoint's database elects the
        # active one wherever the copies run (test below: that database is PostgreSQL).
        (copies,) = [c for c in containers if c.script == script]
        assert copies.replicas >= 2, f"{copies.where}: no standby to take over"


@pytest.mark.parametrize("shape", SHAPES)
def test_no_server_projects_or_runs_deadlines_where_workers_do(shape: str) -> None:
    for container in project_containers():
        if container.where.startswith(f"{shape}:") and container.script == "crm-server":
            settings = settings_of(container)
            assert not settings.in_process_projector, container.where
            assert not settings.in_process_deadlines, container.where


def test_every_shared_store_and_checkpoint_is_a_server_database() -> None:
    for container in project_containers():
        settings = settings_of(container)
        for store in {"event_store_url", "read_store_url"} & reads(container):
            url = getattr(settings, store)
            assert url.split("://")[0] in SHARED_STORE_SCHEMES, f"{container.where}: {url}"
        for checkpoint in CHECKPOINTS & reads(container):
            # PostgreSQL, so that the lease is an advisory lock there (services/bootstrap.py
            # _lease) that copies on different machines share; a file lock would not be.
            url = getattr(settings, checkpoint)
            assert is_postgres(url), f"{container.where}: {checkpoint} is {url}"


@pytest.mark.parametrize("script", ["crm-relay", "crm-deadline-worker"])
def test_the_relay_and_the_deadline_worker_keep_nothing_on_a_volume(script: str) -> None:
    """Their state is in PostgreSQL: no volume claim, so any node may run any copy."""
    containers = [c for c in project_containers() if c.script == script]
    assert {c.where.split(":")[0] for c in containers} == set(SHAPES)
    for container in containers:
        assert not [m for m in container.mounts if m.persistent], container.where


def test_kubernetes_probes_and_ports_are_the_port_the_server_listens_on() -> None:
    for container in project_containers():
        if not container.where.startswith("k8s:") or container.script != "crm-server":
            continue
        settings = settings_of(container)
        port = listen_port(settings.listen)
        # The servers speak TLS only, which kubelet's gRPC probes cannot: they ask the plaintext
        # health port, served from the same health servicer.
        assert settings.tls and settings.health_listen, container.where
        health = listen_port(settings.health_listen)
        assert container.ports == (port, health), container.where
        probes = [container.raw[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        assert [probe["grpc"]["port"] for probe in probes] == [health] * 3, container.where
        # Ready means this server's own service serves; alive means the server answers at all.
        (service,) = settings.services
        assert container.raw["readinessProbe"]["grpc"]["service"] == (
            f"crm.v1.{service.capitalize()}Service"
        )
        assert "service" not in container.raw["livenessProbe"]["grpc"]


def test_compose_health_checks_ask_the_server_about_its_own_services() -> None:
    for container in project_containers():
        if not container.where.startswith("compose:") or container.script != "crm-server":
            continue
        test = container.raw["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] in console_scripts(), container.where
        # It runs inside the server's container: the same environment and mounts.
        check = replace(container, command=tuple(test[1:]))
        assert settings_of(check).services == served(container)
        assert settings_of(check).listen == settings_of(container).listen
        assert container.ports == (listen_port(settings_of(container).listen),)


def test_each_kubernetes_service_reaches_a_port_its_pods_open() -> None:
    pods = [
        (w["spec"]["template"], w) for k in ("Deployment", "StatefulSet") for w in k8s_objects(k)
    ]
    for service in k8s_objects("Service"):
        selector = service["spec"]["selector"]
        matching = [t for t, _ in pods if selector.items() <= t["metadata"]["labels"].items()]
        assert matching, f"Service {service['metadata']['name']} selects no pod"
        for template in matching:
            opened = {
                p.get("name"): p["containerPort"]
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            }
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in opened or target in opened.values(), (
                    f"Service {service['metadata']['name']}: no container port {target}"
                )


def test_every_kubernetes_selector_matches_its_own_pod_template() -> None:
    templates = []
    for kind in ("Deployment", "StatefulSet"):
        for workload in k8s_objects(kind):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
            templates.append(labels)
    for budget in k8s_objects("PodDisruptionBudget"):
        wanted = budget["spec"]["selector"]["matchLabels"].items()
        assert any(wanted <= labels.items() for labels in templates), budget["metadata"]["name"]


def test_every_kubernetes_container_asks_for_resources_and_sets_limits() -> None:
    for container in k8s_containers():
        resources = container.raw["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container.where
        assert {"cpu", "memory"} <= set(resources["limits"]), container.where


def test_every_namespaced_object_is_in_the_crm_namespace() -> None:
    kinds = [doc["kind"] for _, doc in k8s_documents()]
    assert kinds.count("Namespace") == 1
    for _, doc in k8s_documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "crm", doc["metadata"]["name"]


def test_a_server_is_given_longer_to_stop_than_it_gives_running_calls() -> None:
    for container in project_containers():
        if container.script == "crm-server":
            assert container.stop_grace > settings_of(container).grace_seconds, container.where


def test_each_file_a_setting_names_in_a_mounted_secret_is_a_key_of_that_secret() -> None:
    """TLS certificate and key, token keys: the file the setting names is one the Secret has."""
    checked = 0
    for container in project_containers():
        for name, (secret, key) in secret_files(container).items():
            assert key in k8s_named("Secret", secret)["stringData"], (container.where, name)
            checked += 1
    assert checked >= 5 * 3  # three files in each of the five servers
