"""The Kubernetes adapter: raw JSON over the kubernetes client's authenticated HTTP transport.

The generated model classes are skipped on purpose: a planning tick reads thousands of objects
and plain dicts are an order of magnitude cheaper to decode. Every call is synchronous; the kopf
layer runs ticks in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import urllib3.exceptions
import urllib3.util
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from aiscaler.core.errors import detached
from aiscaler.kube.gpus import PoolGpus, gpus_per_pool
from aiscaler.kube.manifests import (
    FIELD_MANAGER,
    FieldManager,
    Manifest,
    is_owned_by,
    replica_managers,
)

APPS_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}  # readable in one LIST per namespace

# Retries of a failed call: ATTEMPTS in all, waiting BACKOFF_S, then twice that (or the server's
# Retry-After, up to MAX_WAIT_S). Reads and the operator's writes (merge patches and applies of
# absolute values) are repeatable, so they are retried on a conflict, throttling, a server error
# or a lost answer; a create (POST) or a replace (PUT, guarded by resourceVersion) only when the
# server surely did not act on it (429, connection refused).
ATTEMPTS = 3
BACKOFF_S = 0.25
MAX_WAIT_S = 5.0
RETRIED_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
REPEATABLE_METHODS = frozenset({"GET", "PATCH"})
# After this many calls in a row failed even when retried, the API server is down or
# overloaded: calls are tried once until one succeeds, so that a tick does not spend its
# time waiting on every object.
FAILING_AFTER = 3


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was unreachable).
    `sent` is False when the request certainly did not reach the server (connection refused);
    `retry_after_s` is the server's Retry-After, if it gave one."""

    def __init__(
        self, status: int, message: str, sent: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.sent = sent
        self.retry_after_s = retry_after_s


class NotFound(KubeError):
    pass


class NotOwned(KubeError):
    """An object exists under the name the operator wants, but the operator does not own it."""


# Memo of `KubeApi.list_by_name`: (apiVersion, kind, namespace) -> objects by name, or the error.
Listings = dict[tuple[str, str, str], dict[str, dict[str, Any]] | KubeError]


@dataclass(frozen=True)
class TargetRef:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class ScaleState:
    replicas: int  # desired replicas as the target's spec says
    ready_replicas: int
    # Who owns the replica count (metadata.managedFields), the latest writer last; None when
    # the object was not read with its managed fields.
    managers: tuple[FieldManager, ...] | None = None

    def managed_by(self, name: str) -> bool | None:
        """Whether the field manager `name` owns the replica count (None: not known)."""
        return None if self.managers is None else any(m.name == name for m in self.managers)


def load_api_client(kubeconfig: str | None = None) -> k8s_client.ApiClient:
    """In-cluster configuration when no kubeconfig is given and we run in a pod, else the
    kubeconfig (the path given, $KUBECONFIG or ~/.kube/config)."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return k8s_client.ApiClient(configuration)
        except k8s_config.ConfigException:
            pass
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    except (k8s_config.ConfigException, OSError) as exc:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise KubeError(0, f"cannot load the kubeconfig {where}: {exc}") from exc
    return k8s_client.ApiClient(configuration)


def _retried(method: str, exc: KubeError) -> bool:
    """Whether a failed call may be sent again (see ATTEMPTS)."""
    if exc.status == 429 or not exc.sent:
        return True
    return method in REPEATABLE_METHODS and (exc.status == 0 or exc.status in RETRIED_STATUSES)


def _maybe_sent(exc: Exception) -> bool:
    """False when the connection was never made, so the server cannot have seen the call."""
    reason = getattr(exc, "reason", exc)  # urllib3 wraps the cause in MaxRetryError
    return not isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: not sent by the API server
        return None


def _now_rfc3339(now: float) -> str:
    # core/v1 Event timestamps are metav1.Time: whole seconds.
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeApi:
    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        timeout_s: float = 10.0,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self._api = api_client
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._failed_in_a_row = 0
        # request() is the one place that retries: urllib3's own retries would repeat a timed-out
        # read up to three more times, and do that inside each of request()'s attempts.
        pool_manager = api_client.rest_client.pool_manager
        pool_manager.connection_pool_kw["retries"] = urllib3.util.Retry(0, read=False)
        pool_manager.clear()
        self._resources: dict[
            str, dict[str, tuple[str, bool]]
        ] = {}  # group/version -> kind -> (plural, namespaced)
        self._lock = threading.Lock()

    # -- transport -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call, retried with backoff where that is safe; returns the decoded JSON body;
        raises KubeError (NotFound for 404)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                answer = self._request_once(method, path, query, body, content_type)
            except KubeError as exc:
                with self._lock:
                    failing = self._failed_in_a_row >= FAILING_AFTER
                if attempt == ATTEMPTS or failing or not _retried(method, exc):
                    trouble = exc.status in (0, 429) or exc.status >= 500  # not the call's fault
                    with self._lock:
                        self._failed_in_a_row = self._failed_in_a_row + 1 if trouble else 0
                    raise
                time.sleep(min(exc.retry_after_s or self._backoff_s * attempt, MAX_WAIT_S))
                continue
            with self._lock:
                self._failed_in_a_row = 0
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request_once(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
    ) -> Any:
        url_path = path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, _, _ = self._api.param_serialize(
            method, url_path, header_params=headers, auth_settings=["BearerToken"]
        )
        try:
            # The transport serialises the body itself for JSON and YAML content types.
            response = self._api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=self._timeout_s
            )
            raw = response.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(
                0, f"{method} {path}: API server unreachable: {exc}", sent=_maybe_sent(exc)
            ) from exc
        if response.status == 404:
            raise NotFound(404, f"{method} {path}: not found")
        if not 200 <= response.status < 300:
            try:
                message = json.loads(raw).get("message", "")
            except (ValueError, AttributeError):
                message = raw[:200].decode(errors="replace")
            raise KubeError(
                response.status,
                f"{method} {path}: {message}",
                retry_after_s=_retry_after(response.headers.get("Retry-After")),
            )
        return json.loads(raw) if raw else None

    # -- resource paths --------------------------------------------------------------------

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from API discovery, cached per group/version."""
        with self._lock:
            known = self._resources.get(api_version)
        if known is None:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.request("GET", base)
            known = {
                r["kind"]: (r["name"], bool(r["namespaced"]))
                for r in listing.get("resources", [])
                if "/" not in r["name"]
            }
            with self._lock:
                self._resources[api_version] = known
        if kind not in known:
            raise NotFound(404, f"the API server serves no kind {kind} in {api_version}")
        return known[kind]

    def path(self, api_version: str, kind: str, namespace: str | None, name: str = "") -> str:
        plural, namespaced = self._resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        return f"{base}/{plural}" + (f"/{quote(name)}" if name else "")

    # -- reads -----------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        return self.request("GET", self.path(api_version, kind, namespace, name))

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        query = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        listing = self.request("GET", self.path(api_version, kind, namespace), query=query)
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    def list_by_name(
        self, listed: Listings, api_version: str, kind: str, namespace: str
    ) -> dict[str, dict[str, Any]]:
        """The objects of one kind in a namespace by name, LISTed once per `listed` memo; a
        failed LIST is remembered too and raised again for every later ask."""
        key = (api_version, kind, namespace)
        if key not in listed:
            try:
                items = self.list(api_version, kind, namespace)
                listed[key] = {o["metadata"]["name"]: o for o in items}
            except KubeError as exc:
                listed[key] = detached(exc)
        by_name = listed[key]
        if isinstance(by_name, KubeError):
            raise by_name
        return by_name

    def read_scales(
        self, targets: Iterable[tuple[str, TargetRef]], executor: Executor | None = None
    ) -> dict[tuple[str, TargetRef], ScaleState | KubeError]:
        """Replicas and ready replicas of every (namespace, target), each read through the
        target's /scale subresource, except apps/v1 workloads, which are read in one LIST per
        namespace and kind (the same numbers, thousands of times cheaper). With an `executor`,
        those LISTs run on it (services spread over 1,000 namespaces are 1,000 LISTs)."""
        targets = list(targets)
        result: dict[tuple[str, TargetRef], ScaleState | KubeError] = {}
        listed: Listings = {}
        lists = sorted(
            {
                ("apps/v1", ref.kind, namespace)
                for namespace, ref in targets
                if ref.api_version == "apps/v1" and ref.kind in APPS_KINDS
            }
        )

        def list_one(key: tuple[str, str, str]) -> None:
            # A failure is remembered in `listed`, and raised below for each of its targets.
            with contextlib.suppress(KubeError):
                self.list_by_name(listed, *key)

        for _ in (executor.map if executor else map)(list_one, lists):
            pass
        for namespace, ref in targets:
            key = (namespace, ref)
            try:
                if ref.api_version == "apps/v1" and ref.kind in APPS_KINDS:
                    by_name = self.list_by_name(listed, "apps/v1", ref.kind, namespace)
                    if ref.name not in by_name:
                        raise NotFound(404, f"{ref.kind} {namespace}/{ref.name} not found")
                    obj = by_name[ref.name]
                    result[key] = ScaleState(
                        replicas=int(obj["spec"].get("replicas", 1)),
                        ready_replicas=int(obj.get("status", {}).get("readyReplicas", 0)),
                        managers=replica_managers(obj),
                    )
                else:
                    result[key] = self.read_scale(namespace, ref)
            except KubeError as exc:
                result[key] = detached(exc)
        return result

    def read_scale(self, namespace: str, ref: TargetRef) -> ScaleState:
        path = self.path(ref.api_version, ref.kind, namespace, ref.name)
        scale = self.request("GET", path + "/scale")
        replicas = int(scale.get("spec", {}).get("replicas", 0))
        # /scale has no ready count; most workloads publish status.readyReplicas.
        obj = self.request("GET", path)
        status = obj.get("status") or {}
        ready = status.get("readyReplicas", scale.get("status", {}).get("replicas", 0))
        # Another kind's /scale may map the count to a field other than spec.replicas: when no
        # owner is found, who owns it is not known (rather than nobody).
        return ScaleState(replicas, int(ready), replica_managers(obj) or None)

    def gpu_pools(
        self, pools: Mapping[str, Mapping[str, str]], resource_name: str = "nvidia.com/gpu"
    ) -> dict[str, PoolGpus]:
        """Nodes, allocatable and free GPUs of each pool (name -> node selector)."""
        if not pools:
            return {}
        nodes = self.list("v1", "Node")
        pods = self.list("v1", "Pod", field_selector="status.phase!=Succeeded,status.phase!=Failed")
        return gpus_per_pool(nodes, pods, pools, resource_name)

    # -- writes ----------------------------------------------------------------------------

    def scale(self, namespace: str, ref: TargetRef, replicas: int) -> None:
        """Set the target's replicas by a server-side apply of its /scale subresource under the
        field manager `aiscaler`, so that aiscaler owns the replica count and nothing else of an
        object it did not make (a GitOps tool's apply keeps the rest). The apply is forced: the
        caller has checked that nobody changed the count since aiscaler last set it
        (handlers.status.scaled_outside), so all it takes over is another manager's claim on
        that value, such as Argo CD's re-apply of the live count (docs/gitops.md)."""
        path = self.path(ref.api_version, ref.kind, namespace, ref.name) + "/scale"
        self.request(
            "PATCH",
            path,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body={
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": ref.name, "namespace": namespace},
                "spec": {"replicas": replicas},
            },
            content_type="application/apply-patch+yaml",
        )

    def apply(self, manifest: Manifest, owner_uid: str | None = None) -> Any:
        """Server-side apply under the field manager `aiscaler`. With `owner_uid`, the object
        must be new or already controlled by that owner: the operator never takes over an
        object someone else made under the same name."""
        meta = manifest["metadata"]
        path = self.path(
            manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]
        )
        if owner_uid is not None:
            try:
                existing = self.request("GET", path)
            except NotFound:
                existing = None
            if existing is not None and not is_owned_by(existing, owner_uid):
                raise NotOwned(
                    409,
                    f"{manifest['kind']} {meta.get('namespace')}/{meta['name']} exists and is "
                    "not owned by this resource; rename one of them",
                )
        return self.request(
            "PATCH",
            path,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest,
            content_type="application/apply-patch+yaml",
        )

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        subresource: str = "",
    ) -> Any:
        path = self.path(api_version, kind, namespace, name) + (
            f"/{subresource}" if subresource else ""
        )
        return self.request(
            "PATCH",
            path,
            query={"fieldManager": FIELD_MANAGER},
            body=body,
            content_type="application/merge-patch+json",
        )

    def event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        now: float,
        warning: bool = False,
    ) -> None:
        """A core/v1 Event on `involved` (a whole object: apiVersion, kind, metadata)."""
        meta = involved["metadata"]
        stamp = _now_rfc3339(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.request("POST", f"/api/v1/namespaces/{quote(meta['namespace'])}/events", body=body)
