# StreamPulse worker image: one Faust worker per container.
#
#   docker build -t streampulse:local .
#   docker run --rm -p 6066:6066 -e KAFKA_BROKER_URL=kafka://kafka:9092 streampulse:local
#
# The same image runs the schema registration job (`python -m app.schemas register`) and the
# simulator (`python -m app.simulate ...`): override the command. deploy/README.md has the details.

############################ builder: a venv with the pinned runtime ############################
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from the lock alone, so code changes reuse this layer. The lock is complete
# (pip check passes on it), hence --no-deps: nothing unpinned can slip in.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock

# The project itself (.dockerignore keeps tests, venvs and caches out of the context).
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info \
    && install -m 0755 deploy/docker/worker.sh /opt/venv/bin/streampulse-worker \
    && python -m compileall -q /src

############################ runtime: venv + source, non-root ############################
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="streampulse" \
      org.opencontainers.image.description="Faust stream-analytics worker for StreamPulse"

# PYTHONPATH=/app: app.catalog finds schemas/ next to the app package, and only the source tree
# under /app has it (the copy pip installed into site-packages does not), so /app/app must win
# whatever the working directory of a command (faust, python -m app.schemas, kubectl workingDir).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WEB_PORT=6066 \
    DATA_DIR=/var/lib/streampulse \
    FAUST_DATADIR=/var/lib/streampulse \
    STORE_URL=rocksdb://

RUN groupadd --system --gid 10001 streampulse \
    && useradd --system --uid 10001 --gid streampulse --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin streampulse \
    && mkdir -p /var/lib/streampulse \
    && chown streampulse:streampulse /var/lib/streampulse

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /src /app

WORKDIR /app
USER 10001:10001

EXPOSE 6066

# No curl in slim images: probe /healthz with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WEB_PORT', '6066'), timeout=4)"]

# streampulse-worker (deploy/docker/worker.sh) runs
#   faust -A app.main worker -l info --web-port "$WEB_PORT" [--web-host <host of WORKER_CANONICAL_URL>]
CMD ["streampulse-worker"]
