"""Vision stages: detection, tracking, faces. Pure functions over plain values."""
