# clanforge-notifier: `docker build -t clanforge-notifier .` then run with the configuration
# mounted at /app/config/notifier.toml and secrets in the environment.
# BASE_IMAGE may be any Debian-like image with Python 3.11 and its venv module; CI builds with a
# Debian base it bootstraps itself (.ci/image), since it can pull none.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# The locked dependencies first: this layer is reused until requirements/runtime.txt changes.
COPY requirements/runtime.txt requirements/runtime.txt
RUN python3 -m venv /opt/notifier \
    && /opt/notifier/bin/pip install --no-cache-dir --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md LICENSE ./
COPY notifier ./notifier
COPY migrations ./migrations
# No wheel file is kept anywhere: pip builds ours with the locked setuptools and installs it;
# then pip and setuptools leave the virtualenv (23 MB), since the image installs nothing later.
RUN /opt/notifier/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/notifier/bin/pip uninstall --quiet --yes setuptools pip

FROM ${BASE_IMAGE}
RUN groupadd --gid 10001 notifier \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app notifier \
    && mkdir -p /app/config /app/data \
    && chown -R 10001:10001 /app
# The same base in both stages, so the virtualenv's interpreter path holds.
COPY --from=build /opt/notifier /opt/notifier
WORKDIR /app
USER 10001:10001
ENV PATH=/opt/notifier/bin:$PATH \
    NOTIFIER_CONFIG=/app/config/notifier.toml \
    PYTHONUNBUFFERED=1
# The SQLite default lives in /app/data; mount a volume there to keep state across restarts.
VOLUME ["/app/data"]
EXPOSE 8080
# Asks /healthz of the configured [server].listen; exits 1 without a [server] section.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["notifier", "health"]
STOPSIGNAL SIGTERM
CMD ["notifier", "run"]
