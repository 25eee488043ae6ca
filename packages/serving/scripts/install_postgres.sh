#!/usr/bin/env bash
# Installs what the PostgreSQL tests need: Debian's PostgreSQL server (apt), whose initdb and
# pg_ctl the tests run on 127.0.0.1 (the apt package's own cluster is not used), and checks
# that the pinned psycopg driver (a dependency of verticals-serving) imports in the venv.
# Usage: packages/serving/scripts/install_postgres.sh [VENV]   (default .venv)
set -euo pipefail
VENV="${1:-.venv}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  && ! { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql
fi
"$VENV/bin/python" -c "import psycopg; print('psycopg', psycopg.__version__)" \
  || "$VENV/bin/pip" install -q -e ./packages/serving
ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null || command -v pg_ctl
