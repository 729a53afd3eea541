# The operator image: `aiscaler run` with the shipped model checkpoint, as a non-root user.
#   docker build -t ghcr.io/aiscaler/aiscaler:0.1.0 .
# Two stages: the first installs the package and its runtime dependencies into a virtualenv
# (no test extras), the second copies only that virtualenv and the checkpoint onto a fresh slim
# base, so pip's caches, the sources and any build tool stay behind. Linted by hadolint
# (tests/unit/test_image.py); no Docker engine runs in CI here.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Same path as in the final stage: a virtualenv is not relocatable.
RUN python -m venv /opt/aiscaler/venv \
    && /opt/aiscaler/venv/bin/pip install --no-cache-dir . \
    && /opt/aiscaler/venv/bin/pip uninstall --yes pip

FROM python:3.11-slim-bookworm
COPY --from=build /opt/aiscaler/venv /opt/aiscaler/venv
COPY model/checkpoint/ /opt/aiscaler/model/checkpoint/
# The installed package does not sit next to model/, so point it at the checkpoint.
# PYTHONMALLOC=malloc: Python objects in glibc's heap, which the operator trims after each tick
# (pymalloc's arenas, pinned by a few live objects, kept the RSS growing under churn; issue 17).
ENV PATH=/opt/aiscaler/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONMALLOC=malloc \
    HOME=/tmp \
    AISCALER_MODEL_PATH=/opt/aiscaler/model/checkpoint
# Numeric, so the kubelet can verify runAsNonRoot; /tmp is the only writable path (emptyDir).
USER 65532:65532
ENTRYPOINT ["aiscaler", "run"]
