"""Recommender: item texts scored against user embeddings, blended with popularity and
co-occurrence, behind a recommendation API."""

from __future__ import annotations
