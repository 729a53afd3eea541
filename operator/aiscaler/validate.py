"""`aiscaler validate FILE...`: custom resources (and a settings file) checked offline, with the
models and checks the operator applies to them.

For each InferenceService and TrainingJob in the files: the API models (schema and cross-field
rules, as the API server and the operator check them), the GPU pool against the operator's pools
when a settings file gives them, and the queries as the operator would build and confine them
(the engine preset's metrics for the unit and latency asked for, selector keys, the PromQL
tenancy guard on a custom demand or throughput query). Documents of other kinds are skipped, so
the command can be given every manifest of a repository (a pre-commit hook). One line per
problem, `FILE:LINE: Kind namespace/name: field: problem`, and exit code 2 when there is one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aiscaler.inputs import EXIT_USAGE, InputError, read_text, read_yaml, yaml_problem

HELP = "check custom resources and settings files offline, as the operator would"
KINDS = ("InferenceService", "TrainingJob")
GROUP = "aiscaler.dev"


@dataclass(frozen=True)
class Document:
    path: Path
    line: int  # 1-based line of the document's start
    data: Any
    node: yaml.Node


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="YAML manifests")
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="the operator's settings file (AISCALER_CONFIG_FILE): checked too, and its GPU "
        "pools are the ones resources.pool must name",
    )
    parser.add_argument(
        "--pools-from",
        type=Path,
        metavar="FILE",
        help="a YAML file whose `pools:` list gives the GPU pools, e.g. the Helm chart's values",
    )


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    pools = None
    if args.settings is not None:
        settings_pools, found = _settings(args.settings)
        problems += found
        pools = settings_pools
    if args.pools_from is not None:
        pools = _pools_from(args.pools_from)
    checked = 0
    for path in args.files:
        try:
            read = list(documents(path))
        except InputError as error:
            problems.append(str(error))
            continue
        for document in read:
            found_in = resource_problems(document, pools)
            if found_in is not None:
                checked += 1
                problems += found_in
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_USAGE
    settings = " and the settings" if args.settings is not None else ""
    print(f"{checked} custom resources{settings} valid")
    return 0


def resource_problems(document: Document, pools: Sequence[Any] | None) -> list[str] | None:
    """The problems of one document, None when it is not an aiscaler resource."""
    from aiscaler.handlers.mapping import parse_service, parse_training

    data = document.data
    if not isinstance(data, dict) or str(data.get("apiVersion", "")).split("/")[0] != GROUP:
        return None
    meta: dict[str, Any] = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else "default"
    label = f"{data.get('kind')} {namespace}/{meta.get('name')}"
    if data.get("kind") not in KINDS:
        lines = [f"kind: not an aiscaler kind (known: {', '.join(KINDS)})"]
    else:
        body = {**data, "metadata": {**meta, "namespace": namespace}}
        parse = parse_service if data["kind"] == "InferenceService" else parse_training
        parsed = parse(body, pools)
        lines = parsed if isinstance(parsed, list) else _query_problems(body, parsed)
    return [f"{document.path}:{_line_of(document, line)}: {label}: {line}" for line in lines]


def _query_problems(body: dict[str, Any], model: Any) -> list[str]:
    """The queries the operator would build for the resource, and why one cannot be built."""
    from aiscaler.api.inference import InferenceService
    from aiscaler.handlers.mapping import service_query
    from aiscaler.metrics.batch import Settings, plan
    from aiscaler.metrics.errors import MetricError
    from aiscaler.metrics.history import HistoryCache
    from aiscaler.metrics.source import JobQuery

    namespace, name = body["metadata"]["namespace"], body["metadata"].get("name") or ""
    if isinstance(model, InferenceService):
        services, jobs = [service_query(body, model, name)], []
    elif model.spec.throughput.query:
        services, jobs = [], [JobQuery(namespace, name, model.spec.throughput.query)]
    else:
        return []
    fields = {
        "history": "spec.demand",
        "demand": "spec.demand",
        "custom_history": "spec.demand.query",
        "custom_demand": "spec.demand.query",
        "served": "spec.demand.preset",
        "queue": "spec.demand.preset",
        "latency": "spec.slo.latency",
        "throughput": "spec.throughput.query",
    }
    found: dict[str, str] = {}  # message -> the first field it is about (a bad selector key
    # fails every preset query alike)
    settings = Settings()
    empty = HistoryCache(settings.history_step_s, settings.history_points, settings.reread_s)
    for batch in plan(services, jobs, time.time(), settings, empty):
        if isinstance(batch.query, MetricError):
            found.setdefault(str(batch.query), fields.get(batch.kind, "spec"))
    return [f"{field}: {message}" for message, field in found.items()]


def _settings(path: Path) -> tuple[list[Any] | None, list[str]]:
    from aiscaler.handlers.mapping import pool_specs
    from aiscaler.settings import settings_file_problems

    settings, problems = settings_file_problems(read_yaml(path, "--settings "))
    if settings is None:
        return None, [f"{path}: settings: {problem}" for problem in problems]
    return pool_specs(settings.pools), []


def _pools_from(path: Path) -> list[Any]:
    from pydantic import TypeAdapter, ValidationError

    from aiscaler.handlers.mapping import pool_specs
    from aiscaler.inputs import pydantic_problems
    from aiscaler.settings import GpuPool

    data = read_yaml(path, "--pools-from ")
    if not isinstance(data, dict) or not isinstance(data.get("pools"), list):
        raise InputError(f"--pools-from {path}: the file has no `pools:` list")
    try:
        pools = TypeAdapter(list[GpuPool]).validate_python(data["pools"])
    except ValidationError as error:
        raise InputError(
            f"--pools-from {path}: pools.{'; pools.'.join(pydantic_problems(error.errors()))}"
        ) from None
    return pool_specs(pools)


def documents(path: Path) -> Iterator[Document]:
    """The YAML documents of a file, with their nodes (for line numbers)."""
    loader = yaml.SafeLoader(read_text(path, ""))
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield Document(
                    path, node.start_mark.line + 1, loader.construct_document(node), node
                )
    except yaml.YAMLError as error:
        raise yaml_problem(error, str(path)) from None
    finally:
        loader.dispose()


def _line_of(document: Document, problem: str) -> int:
    """The line of the deepest key of a `path.to.field: message` problem found in the document
    (a missing field: its parent's), else the document's start."""
    node, line = document.node, document.line
    for key in problem.split(": ", 1)[0].split("."):
        key = key.split("[")[0]
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
            found = [(k, v) for k, v in pairs if k.value == key]
            if not found:
                break
            line, node = found[0][0].start_mark.line + 1, found[0][1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line
