# cronlease container image: the daemon and its CLI in a virtual environment, run as uid 10001.
#
#   docker build -t registry.example.com/platform/cronlease:0.1.0 .
#   docker run --rm -e CRONLEASE_REDIS_URL=redis://redis:6379/0 \
#     -v "$PWD/schedules.yaml:/etc/cronlease/schedules.yaml:ro" -p 9464:9464 \
#     registry.example.com/platform/cronlease:0.1.0
#
# The image needs a Redis (CRONLEASE_REDIS_URL): it has no redis-server for the embedded mode.
# For reproducible builds pin the base image by digest (python:3.11-slim@sha256:...).

# --- builder: build the wheel of this checkout and of its dependencies, install them in a venv ---
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest of the checkout out too).
COPY pyproject.toml README.md ./
COPY scheduler ./scheduler

# Every dependency ships binary wheels for CPython 3.11 on amd64 and arm64 (hiredis included),
# so no compiler is needed. The install step uses only the wheels built here (--no-index), then
# pip itself is removed from the venv: the final image needs no installer.
RUN python -m pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-index --find-links /wheels cronlease \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools \
 && /opt/venv/bin/cronlease --version

# --- final: the venv on a clean base image, nothing else -------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="cronlease" \
      org.opencontainers.image.description="Leader-elected cron scheduler: one replica enqueues every due run into a Redis Stream exactly once" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    CRONLEASE_CONFIG=/etc/cronlease/schedules.yaml

# A fixed non-root user (the Helm chart's runAsUser/runAsGroup/fsGroup) without a home or shell.
RUN groupadd --system --gid 10001 cronlease \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cronlease

# The venv's python links to /usr/local/bin/python3.11, which this base image has too.
COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
# /metrics, /healthz, /readyz (--metrics-port).
EXPOSE 9464

# Outside Kubernetes (where the chart's probes do this) docker sees only the process, so a wedged
# main loop would look healthy. http.client: no curl in the slim image, and no HTTP_PROXY detour.
# Port from CRONLEASE_METRICS_PORT (a --metrics-port flag alone is not seen); with the server off
# (port 0) or bound to another address, run with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('CRONLEASE_METRICS_PORT') or 9464), timeout=4); c.request('GET', '/healthz'); sys.exit(c.getresponse().status != 200)"]

ENTRYPOINT ["cronlease"]
CMD ["run"]
