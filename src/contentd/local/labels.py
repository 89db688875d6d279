"""An in-memory label store, for a local store used without the metadata layer."""

from __future__ import annotations

import threading
from collections.abc import Mapping

__all__ = ["MemoryLabelStore"]


class MemoryLabelStore:
    def __init__(self) -> None:
        self._labels: dict[str, dict[str, str]] = {}
        self._mutex = threading.Lock()

    def get(self, digest: str) -> dict[str, str]:
        with self._mutex:
            return dict(self._labels.get(digest, {}))

    def set(self, digest: str, labels: Mapping[str, str]) -> None:
        with self._mutex:
            self._labels[digest] = {k: v for k, v in labels.items() if v}

    def update(self, digest: str, labels: Mapping[str, str]) -> dict[str, str]:
        with self._mutex:
            current = self._labels.setdefault(digest, {})
            for key, value in labels.items():
                if value:
                    current[key] = value
                else:
                    current.pop(key, None)
            return dict(current)
