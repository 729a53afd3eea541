"""What Argo CD and Flux do to the objects they sync, as far as aiscaler meets it.

Neither tool runs here: this is their documented behaviour, driven by the settings of the
examples in examples/gitops, against the real API server.

- Both apply every manifest with server-side apply under their own field manager, forced
  (Argo CD with `ServerSideApply=true`, Flux always).
- Argo CD's `ignoreDifferences` (`managedFieldsManagers`, `jsonPointers`) leaves out of the diff
  the fields those managers own and those pointers name; with `RespectIgnoreDifferences=true`
  a sync applies the live value of those fields instead of Git's.
- Flux's Kustomization and HelmRelease `patches` (JSON 6902 `remove` here) change the manifest
  before it is applied; before each apply Flux takes over the fields `kubectl` and
  `before-first-apply` set (ssa.ApplyCleanupOptions in kustomize-controller), so its apply
  undoes a `kubectl scale`; helm-controller's drift detection ignores `driftDetection.ignore`.
- Drift (Argo CD's "OutOfSync", Flux's drift detection) is a server-side dry-run apply of the
  manifest compared with the live object.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiscaler.kube.client import KubeApi, NotFound

ARGOCD_MANAGER = "argocd-controller"
FLUX_MANAGER = "kustomize-controller"
# Managers whose fields Flux takes over before it applies (kustomize-controller).
FLUX_TAKES_OVER = ("kubectl", "before-first-apply")

FieldPath = tuple[str, ...]


# -- objects and paths ---------------------------------------------------------------------------


def server_side_apply(
    api: KubeApi, manifest: Mapping[str, Any], manager: str, dry_run: bool = False
) -> dict[str, Any]:
    meta = manifest["metadata"]
    query = {"fieldManager": manager, "force": "true"} | ({"dryRun": "All"} if dry_run else {})
    answer: dict[str, Any] = api.request(
        "PATCH",
        api.path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]),
        query=query,
        body=manifest,
        content_type="application/apply-patch+yaml",
    )
    return answer


def live(api: KubeApi, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = manifest["metadata"]
    try:
        found: dict[str, Any] = api.get(
            manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]
        )
    except NotFound:
        return None
    return found


def pointer_path(pointer: str) -> FieldPath:
    """A JSON pointer (/spec/replicas) as a field path."""
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:])


def get_path(obj: Any, path: FieldPath) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def set_path(obj: dict[str, Any], path: FieldPath, value: Any) -> None:
    """Set (or, for None, remove) the field at `path`."""
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    if value is None:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = copy.deepcopy(value)


def owned_paths(obj: Mapping[str, Any], managers: Iterable[str]) -> list[FieldPath]:
    """The fields the managers own in `obj` (leaves of their managedFields, `f:` keys only:
    enough for the scalar fields these tests are about)."""
    wanted = set(managers)
    paths: list[FieldPath] = []

    def walk(fields: Mapping[str, Any], prefix: FieldPath) -> None:
        for key, sub in fields.items():
            if not key.startswith("f:"):
                continue
            path = (*prefix, key[2:])
            if sub and set(sub) != {"."}:
                walk(sub, path)
            else:
                paths.append(path)

    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") in wanted:
            walk(entry.get("fieldsV1") or {}, ())
    return paths


def differences(a: Any, b: Any, path: FieldPath = ()) -> list[FieldPath]:
    """The paths at which two JSON values differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return [
            p
            for key in sorted(set(a) | set(b))
            for p in differences(a.get(key), b.get(key), (*path, key))
        ]
    return [] if a == b else [path]


def _compared(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a GitOps tool compares: everything but status and server-kept metadata."""
    obj = obj or {}
    meta = obj.get("metadata") or {}
    kept = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    kept["metadata"] = {k: meta.get(k) for k in ("labels", "annotations") if meta.get(k)}
    return kept


def drift(
    api: KubeApi, manifest: Mapping[str, Any], manager: str, ignored: Iterable[FieldPath] = ()
) -> list[FieldPath]:
    """Where applying `manifest` would change the live object, outside `ignored`."""
    skip = list(ignored)
    before = _compared(live(api, manifest))
    after = _compared(server_side_apply(api, manifest, manager, dry_run=True))
    return [
        path
        for path in differences(before, after)
        if not any(path[: len(ignore)] == ignore for ignore in skip)
    ]


# -- Argo CD -------------------------------------------------------------------------------------


class ArgoCd:
    """An Argo CD Application (examples/gitops/argocd-application.yaml) syncing manifests."""

    def __init__(self, application: Mapping[str, Any]) -> None:
        spec = application["spec"]
        self.ignore = list(spec.get("ignoreDifferences") or [])
        self.options = set((spec.get("syncPolicy") or {}).get("syncOptions") or [])
        if "ServerSideApply=true" not in self.options:
            raise ValueError("these tests model Argo CD's server-side apply only")

    def ignored(self, manifest: Mapping[str, Any], obj: Mapping[str, Any]) -> list[FieldPath]:
        """The fields of `obj` its ignoreDifferences entries leave out for `manifest`."""
        group = manifest["apiVersion"].rpartition("/")[0]
        paths: list[FieldPath] = []
        for entry in self.ignore:
            if (entry.get("group", ""), entry["kind"]) != (group, manifest["kind"]):
                continue
            if entry.get("name", manifest["metadata"]["name"]) != manifest["metadata"]["name"]:
                continue
            paths += owned_paths(obj, entry.get("managedFieldsManagers") or [])
            paths += [pointer_path(p) for p in entry.get("jsonPointers") or []]
        return paths

    def desired(self, api: KubeApi, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """What a sync applies: Git's manifest, with the live value of each ignored field when
        RespectIgnoreDifferences=true."""
        wanted = copy.deepcopy(dict(manifest))
        current = live(api, manifest)
        if current is not None and "RespectIgnoreDifferences=true" in self.options:
            for path in self.ignored(manifest, current):
                set_path(wanted, path, get_path(current, path))
        return wanted

    def sync(self, api: KubeApi, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return server_side_apply(api, self.desired(api, manifest), ARGOCD_MANAGER)

    def out_of_sync(self, api: KubeApi, manifest: Mapping[str, Any]) -> list[FieldPath]:
        """The fields Argo CD shows as differing from Git."""
        current = live(api, manifest) or {}
        return drift(api, manifest, ARGOCD_MANAGER, self.ignored(manifest, current))


# -- Flux ----------------------------------------------------------------------------------------


class Flux:
    """A Flux Kustomization or HelmRelease (examples/gitops/flux-kustomization.yaml)."""

    def __init__(self, source: Mapping[str, Any]) -> None:
        spec = source["spec"]
        if source["kind"] == "HelmRelease":
            renderers = spec.get("postRenderers") or []
            self.patches = [
                p for r in renderers for p in (r.get("kustomize") or {}).get("patches", [])
            ]
            ignores = (spec.get("driftDetection") or {}).get("ignore") or []
        else:
            self.patches = list(spec.get("patches") or [])
            ignores = []
        self.drift_ignore = [(i.get("target") or {}, i["paths"]) for i in ignores]

    def build(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest with the patches whose target matches it applied."""
        import yaml

        built = copy.deepcopy(dict(manifest))
        for patch in self.patches:
            if not _targets(patch.get("target") or {}, built):
                continue
            for op in yaml.safe_load(patch["patch"]):
                if op["op"] != "remove":
                    raise ValueError(f"only JSON 6902 remove is modelled, not {op['op']}")
                path = pointer_path(op["path"])
                if get_path(built, path) is None:  # kustomize fails the build then
                    raise ValueError(f"patch removes {op['path']}, which the manifest lacks")
                set_path(built, path, None)
        return built

    def reconcile(self, api: KubeApi, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Take over kubectl's fields, then apply the built manifest."""
        current = live(api, manifest)
        if current is not None:
            _take_over(api, current, FLUX_TAKES_OVER, FLUX_MANAGER)
        return server_side_apply(api, self.build(manifest), FLUX_MANAGER)

    def drifted(self, api: KubeApi, manifest: Mapping[str, Any]) -> list[FieldPath]:
        ignored = [
            pointer_path(p)
            for target, paths in self.drift_ignore
            if _targets(target, manifest)
            for p in paths
        ]
        return drift(api, self.build(manifest), FLUX_MANAGER, ignored)


def _targets(target: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    return all(
        target.get(key, value) == value
        for key, value in (("kind", manifest["kind"]), ("name", manifest["metadata"]["name"]))
    )


def _take_over(api: KubeApi, obj: Mapping[str, Any], managers: Iterable[str], to: str) -> None:
    """Move the fields `managers` own into `to`'s apply entry (what Flux's cleanup does)."""
    entries = obj["metadata"].get("managedFields") or []
    taken = [e for e in entries if e.get("manager") in set(managers)]
    if not taken:
        return
    kept = [e for e in entries if e not in taken]
    mine = next(
        (
            e
            for e in kept
            if (e["manager"], e["operation"]) == (to, "Apply") and not e.get("subresource")
        ),
        None,
    )
    if mine is None:
        mine = {
            "manager": to,
            "operation": "Apply",
            "apiVersion": obj["apiVersion"],
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        }
        kept.append(mine)
    for entry in taken:
        _merge(mine["fieldsV1"], entry.get("fieldsV1") or {})
    meta = obj["metadata"]
    api.request(
        "PATCH",
        api.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
        body={"metadata": {"managedFields": kept, "resourceVersion": meta["resourceVersion"]}},
        content_type="application/merge-patch+json",
    )


def _merge(into: dict[str, Any], fields: Mapping[str, Any]) -> None:
    for key, sub in fields.items():
        _merge(into.setdefault(key, {}), sub)


# -- a controller that syncs every few seconds ---------------------------------------------------


class SyncLoop:
    """Calls `sync` every `period_s` in a thread (a GitOps controller's reconcile loop) until
    stopped; counts its rounds and keeps what went wrong."""

    def __init__(self, sync: Callable[[], None], period_s: float = 1.0) -> None:
        self._sync = sync
        self._period_s = period_s
        self._stop = threading.Event()
        self.rounds = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as error:  # kept for the test to assert on
                self.errors.append(error)
            self.rounds += 1
            self._stop.wait(self._period_s)

    def wait_rounds(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until `count` more rounds have run after this call."""
        target = self.rounds + count + 1  # the round in progress may have started before
        deadline = time.monotonic() + timeout_s
        while self.rounds < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"the sync loop ran {self.rounds} rounds, not {target}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
