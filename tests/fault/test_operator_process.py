"""`aiscaler run` as processes under faults: killed in the middle of a tick and restarted, two
replicas started at once, the leader killed, and watches that keep breaking. Each replica
reaches the real API server through its own fault proxy, so the test sees who wrote what."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from harness.objects import (
    condition,
    deployment,
    events,
    replicas,
    service,
    status,
    vllm_requests,
)
from harness.operator import Replica, operator_kubeconfig, through, wait_for
from harness.proxy import FaultProxy, Seen

TICK_S = 2
LEASE_S = 3 * TICK_S  # the operator's lease duration: three ticks
NEEDED = range(4, 7)  # 10 requests/s at 3 per replica, with the forecast's spread
SCALE = r"/deployments/llm/scale"
# What only the acting replica may send: scale, status and workload writes, events.
WRITES = r"/scale|/status|/events|/deployments/|/jobs/"


@pytest.fixture
def start_replica(
    kube_api, namespace, prometheus_factory, proxies, tmp_path
) -> Iterator[Callable[[str], tuple[Replica, FaultProxy]]]:
    """`start(name)`: an `aiscaler run` process behind a fault proxy of its own."""
    prometheus = prometheus_factory(history=[vllm_requests(namespace, "llm", 10.0, time.time())])
    direct = operator_kubeconfig(kube_api, namespace, tmp_path / "direct.kubeconfig")
    started: list[Replica] = []

    def start(name: str) -> tuple[Replica, FaultProxy]:
        proxy = proxies(kube_api.url, str(kube_api.pki.ca.cert))
        kubeconfig = through(direct, proxy.url, tmp_path / f"{name}.kubeconfig")
        env = {"AISCALER_PROMETHEUS_URL": prometheus.url, "AISCALER_TICK_SECONDS": str(TICK_S)}
        replica = Replica(name, kubeconfig, namespace, tmp_path / f"{name}.log", env)
        started.append(replica)
        return replica, proxy

    yield start
    for replica in started:
        replica.stop()
    for replica in started:  # shown when a test fails
        print(f"--- log of {replica.name}:\n{replica.log()[-3000:]}")


@pytest.fixture
def llm(kube_api, namespace):
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)


def writes(proxy: FaultProxy) -> list[Seen]:
    """The requests through `proxy` that only the acting replica may send."""
    return [
        s
        for s in proxy.seen
        if s.method in ("POST", "PATCH", "PUT") and re.search(WRITES, s.target.split("?")[0])
    ]


def lease_holder(admin, namespace: str) -> str:
    lease = admin.get("coordination.k8s.io/v1", "Lease", namespace, "aiscaler-leader")
    return str(lease["spec"]["holderIdentity"])


def scaled_once(admin, namespace: str) -> dict:
    """Wait for the decision on llm to be applied, recorded and reported; then, a few ticks
    later, it must still be the one event (no tick decided or reported it again)."""

    def reported() -> list[dict]:
        st = status(admin, namespace, "llm")
        applied = st.get("desiredReplicas") == replicas(admin, namespace, "llm")
        return applied and [e for e in events(admin, namespace, "llm") if e["type"] == "Normal"]

    wait_for("the decision and its event", reported, timeout=90)
    time.sleep(2 * TICK_S)
    [event] = reported()
    assert replicas(admin, namespace, "llm") in NEEDED
    assert f"-> {replicas(admin, namespace, 'llm')} replicas" in event["message"]
    return event


def test_killed_in_the_middle_of_a_tick_then_restarted(admin, namespace, llm, start_replica):
    first, proxy = start_replica("first")
    # The first replica's scale write hangs (and never reaches the server): it is killed there.
    proxy.inject("PATCH", SCALE, delay_s=15.0)
    wait_for("the scale write", lambda: proxy.count("PATCH", SCALE) >= 1, timeout=90)
    first.kill()

    assert replicas(admin, namespace, "llm") == 1
    assert "desiredReplicas" not in status(admin, namespace, "llm")
    assert lease_holder(admin, namespace) == "first"  # a killed replica does not let go

    start_replica("second")  # a new pod, a new name
    event = scaled_once(admin, namespace)

    assert lease_holder(admin, namespace) == "second"
    assert "scaled 1 -> " in event["message"]


def test_two_replicas_at_once_only_the_leader_acts_and_the_other_takes_over(
    kube_api, admin, namespace, llm, start_replica
):
    a, proxy_a = start_replica("a")
    b, proxy_b = start_replica("b")
    scaled_once(admin, namespace)
    wait_for(
        "both loops",
        lambda: {a.metric("aiscaler_leader"), b.metric("aiscaler_leader")} == {0.0, 1.0},
    )
    leader, follower = (a, b) if a.metric("aiscaler_leader") == 1 else (b, a)
    leader_proxy, follower_proxy = (proxy_a, proxy_b) if leader is a else (proxy_b, proxy_a)

    assert lease_holder(admin, namespace) == leader.name
    assert writes(leader_proxy)
    assert writes(follower_proxy) == []
    assert follower.metric("aiscaler_tick_duration_seconds_count") == 0

    leader.kill()  # no clean-up: the lease is left to expire
    killed = time.monotonic()
    wait_for("the take-over", lambda: follower.metric("aiscaler_leader") == 1, timeout=60)
    # Within a lease: it expires LEASE_S after the last renewal, and the follower tries each
    # tick (two ticks of slack for a loaded machine).
    assert time.monotonic() - killed <= LEASE_S + 2 * TICK_S + 2

    kube_api.apply(deployment("llm2", 1), namespace)  # work for the new leader
    kube_api.create(service("llm2", demand=service("llm")["spec"]["demand"]), namespace)
    wait_for("the new leader to act", lambda: replicas(admin, namespace, "llm2") in NEEDED)
    assert writes(follower_proxy)


def test_watches_that_keep_breaking_lose_nothing(kube_api, admin, namespace, start_replica):
    replica, proxy = start_replica("only")
    proxy.inject("GET", r"watch=", cut_after_s=1.0)  # every watch stream is cut after a second
    wait_for("leading", lambda: replica.metric("aiscaler_leader") == 1, timeout=90)

    # Created after the start: seen only through the (breaking) watches.
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)
    bad = service("bad", resources={"pool": "nowhere"})
    kube_api.create(bad, namespace)

    scaled_once(admin, namespace)
    wait_for(
        "the invalid spec to be marked",
        lambda: condition(admin, namespace, "bad", "Invalid").get("status") == "True",
        timeout=60,
    )
    assert proxy.count("GET", r"watch=") >= 4  # cut and opened again, several times
