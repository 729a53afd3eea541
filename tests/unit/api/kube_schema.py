"""What the API server does with a custom resource against its CRD schema, in its order: apply
the schema's defaults, reject unknown fields (server-side strict field validation, as
`kubectl apply --validate=strict`), check the OpenAPI schema and list types, then evaluate the
CEL rules. Enough to test the generated CRDs without a cluster.

Errors read like the API server's: `spec.replicas.min: <message>`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy.adapter import json_to_cel
from celpy.celtypes import BoolType

REPO = Path(__file__).resolve().parents[3]

# Errors after which the API server does not evaluate the CEL rules, as their input would be
# ill-typed or incomplete (apiextensions-apiserver: hasBlockingErr).
BLOCKING = {"type", "required", "enum", "maxLength", "maxItems", "maxProperties"}
RULES_NOT_CHECKED = (
    ": some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of a committed CRD, by kind (read once; do not modify it)."""
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"no CRD for kind {kind} in crds/")


def validate(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """The API server's errors for creating `obj`; empty when it would be accepted."""
    obj = apply_defaults(schema, copy.deepcopy(obj))
    errors = [
        f"{_format((*path, key))}: unknown field"
        for node_schema, value, path in _nodes(schema, obj, ())
        if isinstance(value, dict) and "properties" in node_schema
        for key in value
        if key not in node_schema["properties"]
    ]
    schema_errors = list(jsonschema.Draft4Validator(schema).iter_errors(obj))
    errors += [_schema_error(error) for error in schema_errors]
    errors += _duplicate_set_items(schema, obj)
    if any(error.validator in BLOCKING for error in schema_errors):
        return [*errors, RULES_NOT_CHECKED]
    return errors + _cel_errors(schema, obj)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill in absent fields that have a default, then the defaults inside those, as the API
    server does (a `default: {}` object thus gets its fields' defaults)."""
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                apply_defaults(sub, value[name])
        if isinstance(schema.get("additionalProperties"), dict):
            for item in value.values():
                apply_defaults(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def _nodes(
    schema: dict[str, Any], value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[dict[str, Any], Any, tuple[str | int, ...]]]:
    """Every (schema, value, path) of the object that the schema describes."""
    yield schema, value, path
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _nodes(sub, value[name], (*path, name))
        if isinstance(schema.get("additionalProperties"), dict):
            for name, item in value.items():
                yield from _nodes(schema["additionalProperties"], item, (*path, name))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _nodes(schema["items"], item, (*path, index))


def _format(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.removeprefix(".")


def _schema_error(error: jsonschema.ValidationError) -> str:
    path = tuple(error.absolute_path)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return "; ".join(f"{_format((*path, name))}: Required value" for name in missing)
    return f"{_format(path)}: {error.message}"


def _duplicate_set_items(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    errors = []
    for node_schema, value, path in _nodes(schema, obj, ()):
        if node_schema.get("x-kubernetes-list-type") == "set" and isinstance(value, list):
            for index, item in enumerate(value):
                if item in value[:index]:
                    errors.append(f"{_format((*path, index))}: Duplicate value: {item!r}")
    return errors


# Made at import: it raises the recursion limit, which hypothesis warns about inside a test.
_CEL = celpy.Environment()


@functools.cache
def _cel_program(rule: str) -> celpy.Runner:
    return _CEL.program(_CEL.compile(rule))


def _cel_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    errors = []
    for node_schema, value, path in _nodes(schema, obj, ()):
        for validation in node_schema.get("x-kubernetes-validations", []):
            result = _cel_program(validation["rule"]).evaluate({"self": json_to_cel(value)})
            if not (isinstance(result, BoolType) and result):  # or an eval error
                field = _format(path) + validation.get("fieldPath", "")
                errors.append(f"{field}: {validation['message']}")
    return errors
