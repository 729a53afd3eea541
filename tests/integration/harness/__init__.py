"""Real components for the integration tests: etcd + kube-apiserver, Prometheus.

The pytest fixtures in tests/integration/conftest.py are thin wrappers around these helpers;
docs/testing.md says how to use them.
"""
