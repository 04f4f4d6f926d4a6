"""deploy/ read as data: every container of the compose file and the Kubernetes manifests alike.

Nothing here can be started (no Docker, no Kubernetes on the build machine), so the tests read
the files and compare what each container would run with the code: one `Container` shape for
both, with the environment it would see (ConfigMaps and Secrets resolved) and its volumes.
"""

from __future__ import annotations

import importlib
import re
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from crm.settings import Settings
from crm.startup import SettingsParser
from services.entrypoints import credentials

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES_VERSION = "1.33"
"""The Kubernetes release the manifests are checked against (schemas bundled by
kubernetes-validate); grpc probes and the pod-index label need at least 1.28."""

Doc = dict[str, Any]


@dataclass(frozen=True)
class Mount:
    """A volume mounted into a container: where, and whether it outlives the container."""

    path: str
    persistent: bool
    secret: str = ""  # the Secret whose keys appear as files here (Kubernetes)
    volume: str = ""  # the named volume mounted here (compose)
    read_only: bool = False


@dataclass(frozen=True)
class Container:
    """What one container runs, as either deployment shape describes it."""

    where: str  # "compose:case", "k8s:Deployment/crm-case/server"
    image: str
    command: tuple[str, ...]
    env: dict[str, str]
    ports: tuple[int, ...] = ()
    mounts: tuple[Mount, ...] = ()
    replicas: int = 1
    stop_grace: float = 0.0  # seconds it is given to stop before it is killed
    raw: Doc = field(default_factory=dict, compare=False)

    @property
    def script(self) -> str:
        return self.command[0] if self.command else ""


def pyproject() -> Doc:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def project_image() -> str:
    """The image the project's Dockerfile builds, named after the package and its version."""
    project = pyproject()["project"]
    return f"{project['name']}:{project['version']}"


def console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = pyproject()["project"]["scripts"]
    return scripts


def parser_of(script: str) -> SettingsParser:
    """The command line a console script parses, built as its `main` builds it."""
    module = importlib.import_module(console_scripts()[script].split(":")[0])
    if hasattr(module, "parser"):
        built: SettingsParser = module.parser()
        return built
    return SettingsParser(module.PROG, module.__doc__, module.USES)


@cache
def compose() -> Doc:
    loaded: Doc = yaml.safe_load(COMPOSE.read_text())
    return loaded


@cache
def k8s_documents() -> tuple[tuple[str, Doc], ...]:
    """Every Kubernetes object under deploy/k8s, with the file it came from."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path.name, doc))
    return tuple(found)


def k8s_objects(kind: str) -> list[Doc]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def k8s_named(kind: str, name: str) -> Doc:
    (found,) = [doc for doc in k8s_objects(kind) if doc["metadata"]["name"] == name]
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), " ".join(arguments.split())))
    return found


def image_env() -> dict[str, str]:
    """The environment the project image sets (ENV of its last stage), before any container's."""
    stages: list[dict[str, str]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            stages.append({})
        elif keyword == "ENV":
            stages[-1].update(pair.split("=", 1) for pair in arguments.split())  # type: ignore[misc]
    return stages[-1]


def interpolate(text: str) -> str:
    """A compose value as compose reads it with no variable set: `${NAME:-default}` is default."""
    assert "${" not in re.sub(r"\$\{[A-Z0-9_]+:-[^}]*\}", "", text), f"no default: {text}"
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text.replace("$$", "$"))


def compose_containers() -> list[Container]:
    volumes = set(compose().get("volumes") or {})
    found = []
    for name, service in compose()["services"].items():
        command = service.get("command", [])
        entry = service.get("entrypoint", [])
        mounts = []
        for volume in service.get("volumes", []):
            source, target, *options = volume.split(":")
            named = source in volumes
            read_only = bool(options) and "ro" in options[0].split(",")
            mounts.append(Mount(target, named, volume=source if named else "", read_only=read_only))
        found.append(
            Container(
                where=f"compose:{name}",
                image=service["image"],
                command=tuple([*entry, *command] if isinstance(command, list) else [command]),
                env={k: interpolate(str(v)) for k, v in (service.get("environment") or {}).items()},
                ports=tuple(int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])),
                mounts=tuple(mounts),
                replicas=int(service.get("deploy", {}).get("replicas", 1)),
                stop_grace=_seconds(service.get("stop_grace_period", "10s")),
                raw=service,
            )
        )
    return found


def _seconds(duration: str) -> float:
    """A compose duration of whole minutes and seconds (`1m30s`, `30s`), in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"not a duration this reader knows: {duration!r}"
    return 60.0 * int(match[1] or 0) + int(match[2] or 0)


def _env_of(container: Doc) -> dict[str, str]:
    """The environment a container sees: its ConfigMaps and Secrets, then its own entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s_named("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(k8s_named("Secret", source["secretRef"]["name"])["stringData"])
    for entry in container.get("env", []):
        env[entry["name"]] = str(entry.get("value", ""))
    return env


def _workload_templates() -> Iterator[tuple[Doc, Doc]]:
    for kind in ("Deployment", "StatefulSet", "Job"):
        for workload in k8s_objects(kind):
            yield workload, workload["spec"]["template"]


def k8s_containers() -> list[Container]:
    found = []
    for workload, template in _workload_templates():
        pod = template["spec"]
        claims = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v} | {
            t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])
        }
        secrets = {
            v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v
        }
        for container in pod["containers"]:
            found.append(
                Container(
                    where=f"k8s:{workload['kind']}/{workload['metadata']['name']}/"
                    f"{container['name']}",
                    image=container["image"],
                    command=(*container.get("command", []), *container.get("args", [])),
                    env=_env_of(container),
                    ports=tuple(p["containerPort"] for p in container.get("ports", [])),
                    mounts=tuple(
                        Mount(
                            m["mountPath"],
                            persistent=m["name"] in claims,
                            secret=secrets.get(m["name"], ""),
                        )
                        for m in container.get("volumeMounts", [])
                    ),
                    replicas=int(workload["spec"].get("replicas", 1)),
                    stop_grace=float(pod.get("terminationGracePeriodSeconds", 30)),
                    raw=container,
                )
            )
    return found


def project_containers() -> list[Container]:
    """Every container, in either shape, that runs the project's image, with the image's ENV."""
    return [
        replace(c, env={**image_env(), **c.env})
        for c in [*compose_containers(), *k8s_containers()]
        if c.image == project_image()
    ]


def settings_of(container: Container) -> Settings:
    """The settings its process would resolve at start; a wrong one raises SettingError."""
    try:
        settings, _ = parser_of(container.script).settings(
            list(container.command[1:]), environ=_with_secret_files(container)
        )
    except SystemExit as exc:  # argparse refusing a flag the process does not take
        raise AssertionError(f"{container.where}: {container.command} is refused") from exc
    return settings


def secret_files(container: Container) -> dict[str, tuple[str, str]]:
    """Settings that name a file of a mounted Secret: variable -> (Secret, key)."""
    found = {}
    for name, value in container.env.items():
        for mount in container.mounts:
            prefix = mount.path.rstrip("/") + "/"
            if mount.secret and value.startswith(prefix):
                found[name] = (mount.secret, value.removeprefix(prefix))
    return found


def _with_secret_files(container: Container) -> dict[str, str]:
    """The container's environment, with files of mounted Secrets (which exist only in a pod)
    standing in as empty files, and files of a compose volume another service writes (which exist
    only once it ran) read from what that service really writes, so that the settings' checks
    that a file exists can run."""
    env = dict(container.env)
    files = secret_files(container)
    if files:
        stand_ins = Path(tempfile.mkdtemp(prefix="crm-deploy-secret-"))
        for name, (secret, key) in files.items():
            (stand_ins / secret).mkdir(exist_ok=True)
            (stand_ins / secret / key).touch()
            env[name] = str(stand_ins / secret / key)
    for mount in container.mounts:
        if mount.volume and mount.read_only:
            prefix = mount.path.rstrip("/") + "/"
            for name, value in env.items():
                if value.startswith(prefix):
                    env[name] = str(written_volume(mount.volume) / value.removeprefix(prefix))
    return env


def volume_writers(volume: str) -> list[Container]:
    """The compose containers that mount `volume` writable."""
    return [
        c
        for c in project_containers()
        if c.where.startswith("compose:")
        and any(m.volume == volume and not m.read_only for m in c.mounts)
    ]


@cache
def written_volume(volume: str) -> Path:
    """What the one compose service that writes `volume` leaves in it: its crm-credentials
    command run for real, into a directory standing in for the volume."""
    (writer,) = volume_writers(volume)
    assert writer.script == "crm-credentials", f"{writer.where}: only crm-credentials is known"
    (mount,) = [m for m in writer.mounts if m.volume == volume]
    root = Path(tempfile.mkdtemp(prefix=f"crm-deploy-{volume}-"))
    env = {k: v.replace(mount.path, str(root)) for k, v in writer.env.items()}
    args = [a.replace(mount.path, str(root)) for a in writer.command[1:]]
    settings, parsed = parser_of(writer.script).settings(args, environ=env)
    assert settings.data_dir == root, f"{writer.where} writes outside its volume"
    credentials.write(settings, tuple(parsed.name))
    return root


def reads(container: Container) -> set[str]:
    """The names of the settings its process reads."""
    return {setting.name for setting in parser_of(container.script).uses}


def served(container: Container) -> tuple[str, ...]:
    return settings_of(container).services if container.script == "crm-server" else ()


def listen_port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def deploy_texts() -> dict[str, str]:
    """Every file of deploy/ that configures or explains a deployment, by its path under it."""
    paths = [COMPOSE, DOCKERFILE, DEPLOY / "README.md", *sorted(K8S.glob("*.yaml"))]
    return {str(p.relative_to(DEPLOY)): p.read_text() for p in paths}


CRM_VARIABLE = re.compile(r"\bCRM_[A-Z0-9_]+\b")
