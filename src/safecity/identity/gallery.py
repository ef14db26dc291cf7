"""Which enrolled faces may be searched, for a camera, at a frame's time.

The pipeline asks :meth:`GalleryCache.matcher_for` on every analysed frame. The
answer depends on the *frame's* time, not the wall clock: a watchlist is
searched only while its authorisation is valid at that instant and its camera
scope includes the camera (DESIGN.md invariant 1). With no such watchlist the
answer is ``None`` and no face is even embedded.

Templates and authorisation windows are read from the store at most every
``reload_s`` seconds; the validity test itself runs in memory on each call, so
an authorisation that expires mid-stream stops matching at that very frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.vision.embedder import embedder_name

if TYPE_CHECKING:
    from safecity.identity.watchlists import WatchlistInfo

log = logging.getLogger(__name__)


class GalleryCache:
    """Builds and caches one FAISS matcher per set of searchable watchlists."""

    def __init__(self, store, config: SafecityConfig, reload_s: float = 30.0) -> None:
        self.store = store
        self.config = config
        # Templates are stored per embedder: vectors of two embedders never mix.
        self.embedder = embedder_name(config.embedder)
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self._loaded_at = -float("inf")
        self._watchlists: list[WatchlistInfo] = []
        self._vectors = np.zeros((0, 0), np.float32)
        self._meta: list = []
        self._matchers: dict[frozenset[int], object] = {}

    def reload(self) -> None:
        """Read authorisation windows and templates from the store now."""
        from safecity.identity.watchlists import list_watchlists, load_templates

        watchlists = list_watchlists(self.store)
        vectors, meta = load_templates(self.store, self.embedder)
        with self._lock:
            self._watchlists = watchlists
            self._vectors, self._meta = vectors, meta
            self._matchers.clear()
            self._loaded_at = time.monotonic()

    def matcher_for(self, camera: str, at: datetime):
        """The matcher over every watchlist authorised for ``camera`` at ``at``, or None.

        If the store cannot be read, the last gallery read stays in use (its
        authorisation windows are still checked against ``at``); with none read
        yet, nobody is matched. Either way the camera keeps analysing.
        """
        return self.matcher_over(self.allowed(camera, at))

    def allowed(self, camera: str, at: datetime) -> dict[int, WatchlistInfo]:
        """The watchlists (by id) that may be searched on ``camera`` at ``at``."""
        if time.monotonic() - self._loaded_at > self.reload_s:
            try:
                self.reload()
            except SafecityError as exc:
                log.error("watchlists not reloaded (retrying in %.0f s): %s", self.reload_s, exc)
                self._loaded_at = time.monotonic()
        with self._lock:
            return {w.id: w for w in self._watchlists if w.covers(camera, at)}

    def matcher_over(self, watchlist_ids: Iterable[int]):
        """The matcher over these watchlists' templates; None when they hold none."""
        allowed = frozenset(watchlist_ids)
        with self._lock:
            if not allowed or not self._meta:
                return None
            if allowed not in self._matchers:
                self._matchers[allowed] = self._build(allowed)
            return self._matchers[allowed]

    def _build(self, allowed: frozenset[int]):
        """A matcher over the allowed watchlists' templates; None when they hold none."""
        from safecity.identity.matcher import FaissMatcher

        rows = [i for i, m in enumerate(self._meta) if m.watchlist_id in allowed]
        if not rows:
            return None
        matcher = FaissMatcher(self.config.matcher.threshold, self.config.matcher.margin)
        matcher.build(self._vectors[rows], [self._meta[i] for i in rows])
        return matcher
