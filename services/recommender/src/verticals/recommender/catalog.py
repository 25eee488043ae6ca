"""In-memory item metadata by key: what filters and responses need, without a database trip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Filters:
    categories: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    in_stock_only: bool = True
    exclude_seen: bool = False
    exclude_purchased: bool = True


class ItemMeta:
    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.titles: list[str] = []
        self.categories: list[str] = []
        self.price = np.zeros(0, dtype=np.float64)
        self.in_stock = np.zeros(0, dtype=bool)
        self.present = np.zeros(0, dtype=bool)
        self.key_of: dict[str, int] = {}
        self._category_keys: dict[str, set[int]] = {}

    def _grow(self, size: int) -> None:
        if size <= len(self.ids):
            return
        extra = size - len(self.ids)
        self.ids += [None] * extra
        self.titles += [""] * extra
        self.categories += [""] * extra
        self.price = np.concatenate([self.price, np.full(extra, np.nan)])
        self.in_stock = np.concatenate([self.in_stock, np.zeros(extra, dtype=bool)])
        self.present = np.concatenate([self.present, np.zeros(extra, dtype=bool)])

    def set(
        self, key: int, item_id: str, title: str, category: str, price: float | None, in_stock: bool
    ) -> None:
        self._grow(key + 1)
        old = self.categories[key]
        if old and key in self._category_keys.get(old, set()):
            self._category_keys[old].discard(key)
        self.ids[key], self.titles[key], self.categories[key] = item_id, title, category
        self.price[key] = np.nan if price is None else price
        self.in_stock[key] = in_stock
        self.present[key] = True
        self.key_of[item_id] = key
        self._category_keys.setdefault(category, set()).add(key)

    def remove(self, key: int) -> None:
        item_id = self.ids[key]
        if item_id is not None:
            self.key_of.pop(item_id, None)
        self._category_keys.get(self.categories[key], set()).discard(key)
        self.ids[key] = None
        self.present[key] = False

    def mask(self, keys: np.ndarray, filters: Filters) -> np.ndarray:
        """Which of ``keys`` pass the item filters (user filters are applied by the caller)."""
        ok = self.present[keys].copy()
        if filters.in_stock_only:
            ok &= self.in_stock[keys]
        price = self.price[keys]
        if filters.min_price is not None:
            ok &= price >= filters.min_price
        if filters.max_price is not None:
            ok &= price <= filters.max_price
        if filters.categories:
            wanted = np.zeros(len(self.present), dtype=bool)
            for category in filters.categories:
                wanted[list(self._category_keys.get(category, ()))] = True
            ok &= wanted[keys]
        return ok

    def all_keys(self) -> np.ndarray:
        return np.flatnonzero(self.present).astype(np.int64)

    def category_size(self, categories: frozenset[str]) -> int:
        return sum(len(self._category_keys.get(c, ())) for c in categories)
