"""Optional rewording by any OpenAI-compatible chat-completions endpoint. Off by default; the
caller keeps the extractive answer whenever this returns None (endpoint down, slow or odd)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger("verticals.support_bot.llm")

PROMPT = (
    "You are a customer-service assistant. Rewrite the ANSWER so it replies to the QUESTION in "
    "a friendly, concise way. Use only facts from the ANSWER; do not add anything."
)


class Rewriter:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_s: float = 8.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout_s)

    def reword(self, question: str, answer: str) -> str | None:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": PROMPT},
                {"role": "user", "content": f"QUESTION: {question}\nANSWER: {answer}"},
            ],
        }
        try:
            response = self.client.post(self.url, json=body, headers=self.headers)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("rewording failed, keeping the extractive answer: %s", exc)
            return None
        text = str(text).strip()
        return text or None
