"""Customer-service bot: per-tenant knowledge bases, hybrid retrieval and a chat-widget API."""

from __future__ import annotations
