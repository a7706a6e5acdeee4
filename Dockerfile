# longline in a container: the capture engine of deployment option 3 (ECS Fargate) or option 4
# (one server), and a quick way to run it anywhere:
#   docker build -t longline .                      # docker buildx build --platform linux/arm64 ...
#   docker run --rm -v "$PWD/longline.yaml:/config/longline.yaml:ro" -v "$PWD/data:/data" longline
# A relative sqlite:/// store lands in /data. EXTRAS picks the optional dependencies: the
# DynamoDB store (option 3) by default; "[postgres]" for PostgreSQL, "" for SQLite only:
#   docker build --build-arg EXTRAS="" -t longline .
FROM python:3.11-slim

ARG EXTRAS="[dynamodb]"
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/longline-src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".${EXTRAS}" \
    && cd / && rm -rf /tmp/longline-src

# Never run as root: a fixed uid/gid so mounted volumes can be prepared for it.
RUN groupadd --system --gid 10001 longline \
    && useradd --system --uid 10001 --gid longline --home-dir /data --create-home \
       --shell /usr/sbin/nologin longline \
    && mkdir -p /config
WORKDIR /data
USER 10001:10001

# The operators' listener on loopback serves /healthz to the health check below (and /metrics,
# /readyz, the status page to `docker exec`). To scrape from outside the container, override
# the command with `--http 0.0.0.0:9464` and set `http.token` in the config.
EXPOSE 9464
ENV LONGLINE_HEALTH_URL=http://127.0.0.1:9464/healthz
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['LONGLINE_HEALTH_URL'], timeout=4)"]

# longline flushes and commits its last checkpoint on SIGTERM (docker stop, ECS, systemd);
# SIGHUP (docker kill -s HUP) re-reads the config.
STOPSIGNAL SIGTERM
ENTRYPOINT ["longline"]
CMD ["run", "/config/longline.yaml", "--http", "127.0.0.1:9464"]
