"""What every request handler shares: config, store, clock, live frames, models."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from safecity.config import SafecityConfig
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store

if TYPE_CHECKING:
    from safecity.api.live import LiveHub


@dataclass
class ApiContext:
    """One per server. Models load on first use (enrolment, pixelation), once."""

    config: SafecityConfig
    store: Store
    clock: Clock = SYSTEM_CLOCK
    live: LiveHub | None = None  # frames of the cameras this process runs, if any
    _models: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, name: str) -> Any:
        """``face_detector`` (YuNet, for enrolment and pixelation) or ``embedder``."""
        with self._lock:
            if name not in self._models:
                self._models[name] = self._load(name)
            return self._models[name]

    def _load(self, name: str) -> Any:
        if name == "face_detector":
            from safecity.vision.faces import FaceDetector

            return FaceDetector(self.config.faces)
        if name == "embedder":
            from safecity.vision.embedder import make_embedder

            return make_embedder(self.config.embedder)
        if name == "redactor":
            from safecity.vision.redact import FaceRedactor

            return FaceRedactor()
        raise KeyError(name)
