"""Field types the services' APIs share."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    """pydantic reads a bare number as Unix time; an API documented as date-time must not."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-31T12:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A ``datetime`` that accepts ISO 8601 text only (``since=0.5`` is a 422, not 1970)."""
