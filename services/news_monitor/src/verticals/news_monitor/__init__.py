"""Financial news monitor: a Kafka stream classified for sentiment and topic, with alerts."""

from __future__ import annotations
