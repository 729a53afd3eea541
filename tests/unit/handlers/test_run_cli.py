import pytest

from aiscaler.cli import main


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"AISCALER_TICK_SECONDS": "-1"}, [], "tick_seconds"),
        ({"AISCALER_PROMETHEUS_URL": "prometheus:9090"}, [], "prometheus_url"),
        ({}, ["--kubeconfig", "/nonexistent/kubeconfig"], "/nonexistent/kubeconfig"),
    ],
)
def test_run_stops_at_once_on_bad_configuration(monkeypatch, capsys, env, args, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AISCALER_CONFIG_FILE", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["run", *args]) == 2
    assert message in capsys.readouterr().err
