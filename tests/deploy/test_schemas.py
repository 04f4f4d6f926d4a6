"""deploy/ against the published schemas, offline: Kubernetes' own and the compose specification.

kubernetes-validate bundles the Kubernetes JSON schemas of each release; check-jsonschema
bundles the compose-spec schema. Both are pinned in the dev extras, so nothing is fetched here.
Each check is also shown to refuse a broken copy, so a validator that accepts anything fails.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.manifests import KUBERNETES_VERSION, Doc, compose, k8s_documents


def _k8s_ids() -> list[str]:
    return [f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in k8s_documents()]


@pytest.mark.parametrize(("name", "doc"), k8s_documents(), ids=_k8s_ids())
def test_each_kubernetes_object_matches_its_schema_strictly(name: str, doc: Doc) -> None:
    """Strict: a field the schema does not know (a typo) fails too."""
    checked = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert checked == KUBERNETES_VERSION


def test_the_kubernetes_check_refuses_a_typo_and_a_wrong_type() -> None:
    (deployment,) = [
        doc
        for _, doc in k8s_documents()
        if doc["metadata"]["name"] == "crm-case" and doc["kind"] == "Deployment"
    ]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)
    named_port = copy.deepcopy(deployment)
    named_port["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["port"] = (
        "grpc"  # gRPC probes take a port number only
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(named_port, KUBERNETES_VERSION, strict=True)


def _compose_schema() -> Any:
    schema = importlib.resources.files("check_jsonschema").joinpath(
        "builtin_schemas/vendor/compose-spec.json"
    )
    return json.loads(schema.read_text())


def _compose_errors(document: Doc) -> list[str]:
    validator = jsonschema.Draft7Validator(
        _compose_schema(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_the_compose_file_matches_the_compose_specification() -> None:
    assert _compose_errors(compose()) == []


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("case", "healthcheck", {"test": ["CMD", "crm-healthcheck"], "interval": 10}),
        ("relay", "restart_policy", "always"),  # belongs under deploy:, not here
        ("customer", "depends_on", {"postgres": {"condition": "when_ready"}}),
    ],
)
def test_the_compose_check_refuses_a_broken_service(service: str, key: str, value: object) -> None:
    broken = copy.deepcopy(compose())
    broken["services"][service][key] = value
    assert _compose_errors(broken) != []
