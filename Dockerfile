# The ostack operator image: every service, chosen with `--service` (the chart runs one
# Deployment per service). Slim, non-root, a pinned base.
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operators ./operators
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11.10-slim-bookworm
COPY --from=build /install /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The chart sets the same user and a read-only root filesystem; nothing is written at run
# time (the webhook certificate is mounted).
USER 65532:65532
ENTRYPOINT ["python", "-m", "operators"]
