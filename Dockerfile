# clanforge-notifier: `docker build -t clanforge-notifier .` then run with the configuration
# mounted at /app/config/notifier.toml and secrets in the environment.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY notifier ./notifier
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 notifier
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
# The SQLite default lives in /app/data; mount a volume there to keep state across restarts.
RUN mkdir -p /app/config /app/data && chown -R notifier:notifier /app
USER notifier
ENV NOTIFIER_CONFIG=/app/config/notifier.toml \
    PYTHONUNBUFFERED=1
VOLUME ["/app/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["notifier", "run"]
