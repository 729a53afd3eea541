"""`aiscaler run`: start the operator (in-cluster, or with a kubeconfig)."""

from __future__ import annotations

import argparse
import logging
import os
import socket

HELP = "run the operator (in-cluster, or against a kubeconfig)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: in-cluster when in a pod, else $KUBECONFIG or "
        "~/.kube/config)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="namespace to watch (repeat for several; a glob such as team-* works); default: "
        "AISCALER_NAMESPACES, else all namespaces",
    )
    parser.add_argument(
        "--operator-namespace",
        default=os.environ.get("POD_NAMESPACE", "aiscaler"),
        help="namespace of the operator itself: leader Lease and balloon Deployments "
        "(default: $POD_NAMESPACE, else aiscaler)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from aiscaler.handlers.operator import RunOptions, build_operator, build_registry
    from aiscaler.inputs import InputError, fail
    from aiscaler.kube.client import KubeError
    from aiscaler.settings import load_settings

    options = RunOptions(
        kubeconfig=args.kubeconfig,
        identity=os.environ.get("POD_NAME", socket.gethostname()),
        namespace=args.operator_namespace,
    )
    # Settings, clients and the forecaster are built once, before kopf starts, so that a bad
    # setting or kubeconfig stops the command at once with the reason (a checkpoint that does
    # not load gives the baseline forecaster, and every service's Degraded condition says so).
    try:
        settings = load_settings()
        operator, why = build_operator(settings, options)
    except (InputError, KubeError, OSError) as error:
        return fail("run", error)
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON)
    logging.getLogger("aiscaler").info("forecaster: %s", why)
    namespaces = args.namespace or list(settings.namespaces)
    kopf.run(
        registry=build_registry(options),
        memo=kopf.Memo(operator=operator),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
    )
    return 0
