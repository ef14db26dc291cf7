"""safecity: open, self-hosted, accountable video analytics for city camera networks."""

import os

# YuNet (yuface) and FAISS parallelise with OpenMP, whose worker threads spin
# while waiting. Cameras already run in parallel (one thread each) and ONNX Runtime
# has its own pool, so OpenMP's threads only fight them for the cores: measured
# here, face detection on a person crop took 197 ms a call with the default and
# 8 ms with one thread. An operator's explicit setting still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

__version__ = "0.1.0"
