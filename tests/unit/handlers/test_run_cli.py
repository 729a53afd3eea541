import pytest

from aiscaler.cli import main


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"AISCALER_TICK_SECONDS": "-1"}, [], "AISCALER_TICK_SECONDS: Input should be greater"),
        ({"AISCALER_PROMETHEUS_URL": "x:9090"}, [], "AISCALER_PROMETHEUS_URL: prometheus_url must"),
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
