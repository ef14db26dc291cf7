"""Tests that embed every LFW development image run only with a vector cache.

Embedding the 4,992 images with dlib, its mirror image and FaceRes takes about
30 minutes on the 2-core build machine, more than the whole rest of the suite.
``make test-lfw`` runs these tests with ``SAFECITY_LFW_CACHE`` set to a lasting
folder (``~/.cache/safecity/lfw-emb``): the first run embeds, later ones read
the vectors. The suite's LFW subset test (real images, every embedder) always runs.
"""

from __future__ import annotations

import os

import pytest

needs_lfw_cache = pytest.mark.skipif(
    not os.environ.get("SAFECITY_LFW_CACHE"),
    reason="embeds all LFW dev images with three embedders (~30 min on 2 cores): "
    "run `make test-lfw`, which caches the vectors",
)
