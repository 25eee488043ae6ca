"""What every service shares: settings base, app factory, auth, metrics, logging, database."""

from __future__ import annotations
