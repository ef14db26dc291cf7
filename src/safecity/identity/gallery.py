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

import threading
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select

from safecity.config import EmbedderConfig, SafecityConfig


@dataclass(frozen=True)
class _Window:
    watchlist_id: int
    valid_from: datetime
    valid_until: datetime
    all_cameras: bool
    cameras: frozenset[str]

    def allows(self, camera: str, at: datetime) -> bool:
        in_scope = self.all_cameras or camera in self.cameras
        return in_scope and self.valid_from <= at < self.valid_until


def embedder_name(config: EmbedderConfig) -> str:
    """The name templates are stored under: vectors of two embedders never mix."""
    from safecity.vision.embedder import embedder_name as name

    return name(config)


class GalleryCache:
    """Builds and caches one FAISS matcher per set of searchable watchlists."""

    def __init__(self, store, config: SafecityConfig, reload_s: float = 30.0) -> None:
        self.store = store
        self.config = config
        self.embedder = embedder_name(config.embedder)
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self._loaded_at = -float("inf")
        self._windows: list[_Window] = []
        self._vectors = np.zeros((0, 0), np.float32)
        self._meta: list = []
        self._matchers: dict[frozenset[int], object] = {}

    def reload(self) -> None:
        """Read authorisation windows and templates from the store now."""
        from safecity.identity.matcher import GalleryEntry
        from safecity.store.schema import Authorisation, Person, Template, Watchlist

        with self.store.transaction() as session:
            windows = [
                _Window(
                    watchlist.id,
                    auth.valid_from,
                    auth.valid_until,
                    auth.all_cameras,
                    frozenset(c.camera for c in auth.cameras),
                )
                for watchlist, auth in session.execute(
                    select(Watchlist, Authorisation).join(
                        Authorisation, Watchlist.authorisation_id == Authorisation.id
                    )
                )
            ]
            rows = session.execute(
                select(
                    Template.vector,
                    Template.dim,
                    Person.id,
                    Person.name,
                    Watchlist.id,
                    Watchlist.name,
                )
                .join(Person, Template.person_id == Person.id)
                .join(Watchlist, Person.watchlist_id == Watchlist.id)
                .where(Template.embedder == self.embedder)
                .order_by(Template.id)
            ).all()
        vectors = [np.frombuffer(r[0], dtype="<f4", count=r[1]) for r in rows]
        meta = [GalleryEntry(r[2], r[3], r[4], r[5]) for r in rows]
        with self._lock:
            self._windows = windows
            self._vectors = np.vstack(vectors).astype(np.float32) if vectors else self._vectors
            self._meta = meta
            self._matchers.clear()
            self._loaded_at = time.monotonic()

    def matcher_for(self, camera: str, at: datetime):
        """The matcher over every watchlist authorised for ``camera`` at ``at``, or None."""
        if time.monotonic() - self._loaded_at > self.reload_s:
            self.reload()
        with self._lock:
            allowed = frozenset(w.watchlist_id for w in self._windows if w.allows(camera, at))
            if not allowed or not self._meta:
                return None
            matcher = self._matchers.get(allowed)
            if matcher is None:
                matcher = self._build(allowed)
                self._matchers[allowed] = matcher
            return matcher

    def _build(self, allowed: frozenset[int]):
        from safecity.identity.matcher import FaissMatcher

        rows = [i for i, m in enumerate(self._meta) if m.watchlist_id in allowed]
        matcher = FaissMatcher(self.config.matcher.threshold, self.config.matcher.margin)
        matcher.build(self._vectors[rows], [self._meta[i] for i in rows])
        return matcher
