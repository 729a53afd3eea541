# The operator image: the package and the shipped model checkpoint, run as a non-root user.
# Build: docker build -t aiscaler:0.1.0 .   (not built in CI here: the machines have no Docker engine)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp

WORKDIR /opt/aiscaler
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY model/checkpoint/ model/checkpoint/
RUN pip install .

# The installed package does not sit next to model/, so point it at the checkpoint.
ENV AISCALER_MODEL_PATH=/opt/aiscaler/model/checkpoint

# Numeric, so the kubelet can verify runAsNonRoot; /tmp is the only writable path (emptyDir).
USER 65532:65532
ENTRYPOINT ["aiscaler"]
CMD ["run"]
