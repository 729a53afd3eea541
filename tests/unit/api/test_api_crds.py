"""The committed CRDs are what `aiscaler crds` generates, are valid CRDs, and have a structural
schema the API server accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kube_schema import REPO, apply_defaults

from aiscaler.cli import main

CRD_DIR = REPO / "crds"
CRD_FILES = sorted(CRD_DIR.glob("*.yaml"))
KUBERNETES_VERSION = "1.37"
# What a structural schema may not hold (the API server rejects or cannot prune through them).
FORBIDDEN_KEYS = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "nullable", "title"}


def load(path: Path) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd


def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    served: dict[str, Any] = only
    return served


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


def test_generating_reproduces_the_committed_crds_byte_for_byte(tmp_path: Path) -> None:
    assert main(["crds", "--output-dir", str(tmp_path)]) == 0
    generated = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_bytes() for path in CRD_FILES}
    assert generated.keys() == committed.keys()
    for name, text in generated.items():
        assert text == committed[name], f"crds/{name} drifted from the models: run `make crds`"


def test_the_reference_in_the_docs_is_generated_from_the_models(tmp_path: Path) -> None:
    out = tmp_path / "reference.md"
    assert main(["crds", "--output-dir", str(tmp_path / "crds"), "--reference", str(out)]) == 0
    committed = REPO / "docs" / "crd-reference.md"
    assert out.read_text() == committed.read_text(), (
        "docs/crd-reference.md drifted from the models: run `make crds`"
    )
    # every field of both kinds is in it
    for crd in CRD_FILES:
        schema = version(load(crd))["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for where, _ in schema_nodes(schema["properties"][part], f".{part}"):
                if where != f".{part}" and not where.endswith(("[]", "{}")):
                    assert f"`{where[1:]}`" in out.read_text(), where


def test_there_is_one_crd_per_kind() -> None:
    assert [path.name for path in CRD_FILES] == [
        "inferenceservices.aiscaler.dev.yaml",
        "trainingjobs.aiscaler.dev.yaml",
    ]


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_kubernetes_validate_strict_accepts_the_crd(path: Path) -> None:
    kubernetes_validate.validate(load(path), KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_schema_is_structural(path: Path) -> None:
    schema = version(load(path))["schema"]["openAPIV3Schema"]
    for where, node in schema_nodes(schema):
        assert not FORBIDDEN_KEYS & node.keys(), f"{where}: {FORBIDDEN_KEYS & node.keys()}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), where
        assert not ("properties" in node and "additionalProperties" in node), where
        if node.get("type") == "object" and "default" in node:
            # An object's default is what its fields' defaults make of an absent object.
            assert node["default"] == apply_defaults(node, {}), where


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_every_spec_and_status_field_is_documented(path: Path) -> None:
    schema = version(load(path))["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for where, node in schema_nodes(schema["properties"][part], f".{part}"):
            if not where.endswith(("[]", "{}")):  # list items and map values are not fields
                assert node.get("description"), f"{where} has no description"


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_printer_columns_point_at_fields_of_the_schema(path: Path) -> None:
    served = version(load(path))
    fields = {where for where, _ in schema_nodes(served["schema"]["openAPIV3Schema"])}
    fields.add(".metadata.creationTimestamp")  # owned by the API server, not the CRD schema
    columns = served["additionalPrinterColumns"]
    assert columns[-1]["name"] == "Age"
    for column in columns:
        # a filter picks list items: .status.conditions[?(@.type=="Degraded")].reason
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"])
        assert path in fields, column


@pytest.mark.parametrize(
    ("path", "short_name", "columns"),
    [
        (
            CRD_DIR / "inferenceservices.aiscaler.dev.yaml",
            "ais",
            {
                "Mode",
                "Replicas",
                "Ready",
                "Desired",
                "Forecast",
                "Degraded",
                "Limited",
                "Invalid",
                "Age",
            },
        ),
        (
            CRD_DIR / "trainingjobs.aiscaler.dev.yaml",
            "atj",
            {"Phase", "Workers", "Desired", "Limited", "GPU-Hours", "Invalid", "Age"},
        ),
    ],
    ids=["InferenceService", "TrainingJob"],
)
def test_names_subresources_and_columns(path: Path, short_name: str, columns: set[str]) -> None:
    crd = load(path)
    served = version(crd)
    assert crd["spec"]["names"]["shortNames"] == [short_name]
    assert crd["spec"]["names"]["categories"] == ["aiscaler", "all"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert served["name"] == "v1alpha1" and served["served"] and served["storage"]
    # Status only: the resources hold a replica range, not a count another scaler could set
    # (docs/api.md, "Why no scale subresource").
    assert served["subresources"] == {"status": {}}
    assert {column["name"] for column in served["additionalPrinterColumns"]} == columns
