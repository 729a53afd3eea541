from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from aiscaler.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DOCS = [
    (path.name, doc)
    for path in sorted(DEPLOY.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]


@pytest.mark.parametrize(("path", "doc"), DOCS, ids=[f"{p}:{d['kind']}" for p, d in DOCS])
def test_deploy_manifests_are_valid_kubernetes_objects(path, doc):
    kubernetes_validate.validate(doc, "1.34", strict=True)


def test_the_balloon_priority_class_is_the_default_setting_and_never_preempts():
    [pc] = [d for _, d in DOCS if d["kind"] == "PriorityClass"]
    assert pc["metadata"]["name"] == Settings.model_fields["balloon_priority_class"].default
    assert pc["value"] < 0 and pc["preemptionPolicy"] == "Never"


def test_the_cluster_role_never_deletes():
    [role] = [d for _, d in DOCS if d["kind"] == "ClusterRole"]
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert "delete" not in verbs and "deletecollection" not in verbs and "*" not in verbs
