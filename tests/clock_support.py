"""Running the suite with the clock moved (``make test-clock-ahead``: faketime -f +365d).

No test may depend on the day it runs. A few cannot run under libfaketime at all, for
reasons that have nothing to do with dates, and are skipped there:

* file ages: the kernel stamps files with the real time while Python's clock is a year
  ahead, so a file written a second ago is a year old to the retention sweep;
* timed waits: libfaketime shifts the monotonic clock, so ``threading.Event.wait(t)``
  (an absolute deadline handed to the kernel) sleeps a year instead of ``t``.
"""

from __future__ import annotations

import os

import pytest

FAKED = "FAKETIME" in os.environ  # set by faketime(1) for the libfaketime it preloads

needs_real_file_times = pytest.mark.skipif(
    FAKED, reason="faketime: the kernel stamps files on the real clock, Python reads a faked one"
)
needs_real_timed_waits = pytest.mark.skipif(
    FAKED, reason="faketime: timed waits (Event.wait with a timeout) sleep on the faked clock"
)
