"""``safecity bench decode`` on the real arcade clip: old and new reads, side by side."""

from __future__ import annotations

from pathlib import Path

from safecity.video.bench_decode import bench_decode


def test_bench_decode_compares_full_decoding_with_skipping(data_dir: Path) -> None:
    result = bench_decode([data_dir / "video/arcade-crowd-1080p.mp4"], fps=5, rounds=1)
    (clip,) = result["clips"]
    assert clip["auto"] == "nonref" and clip["codec"] == "h264"
    old, new = clip["modes"]
    assert (old["skip"], old["decoded"], new["skip"], new["decoded"]) == ("none", 105, "nonref", 53)
    assert old["delivered"] == new["delivered"] == 21
    for mode in (old, new):
        assert mode["ms_per_delivered"] > 0 and mode["cpu_s_per_video_s"] > 0
    assert clip["time_ratio"] > 0 and clip["cpu_ratio"] > 0  # figures, not a race on a busy CI
