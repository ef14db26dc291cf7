"""The fixtures of tests/api (an app on a real store, a user per role), for the pages.

tests/api/conftest.py imports its helper as ``api_support`` (pytest puts tests/api on
sys.path only once it collects that folder), so the folder goes on the path here too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api.conftest import (  # noqa: E402, F401
    anonymous,
    api_config,
    api_store,
    app,
    cheap_argon2,
    ctx,
)
