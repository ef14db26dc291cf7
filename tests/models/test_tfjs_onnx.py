"""The TF.js -> ONNX converter reproduces TF.js's own outputs.

The references in tests/fixtures/tfjs_*.npz were made by running the original
model.json files with TF.js 4.22 (pure-JS CPU backend) on real inputs, see
tools/tfjs-reference/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from safecity.errors import ModelError
from safecity.models.tfjs_onnx import convert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOLERANCE = 1e-3  # max abs difference allowed between ONNX Runtime and TF.js outputs


def _reference(name: str) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    ref = np.load(FIXTURES / f"tfjs_{name}.npz")
    meta = json.loads(str(ref["meta"]))
    x = ref["input"] if "input" in ref.files else ref["input_uint8"].astype(np.float32)
    outputs = [ref[f"output_{i}"] for i in range(len(meta["outputs"]))]
    return meta, x, outputs


@pytest.mark.parametrize("name", ["nanodet", "centernet", "faceres"])
def test_onnx_matches_tfjs(name: str, tfjs_models: dict[str, Path]) -> None:
    meta, x, expected = _reference(name)
    session = ort.InferenceSession(str(tfjs_models[name]), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == meta["outputs"]
    got = session.run(None, {session.get_inputs()[0].name: x})
    for out_name, g, e in zip(meta["outputs"], got, expected, strict=True):
        assert g.shape == e.shape, out_name
        diff = float(np.abs(g - e).max())
        assert float(e.std()) > 1e-3, out_name  # a real signal, not a constant to match
        assert diff <= TOLERANCE, f"{name} {out_name}: max abs diff {diff:.2e}"


def test_centernet_reference_has_real_detections() -> None:
    # guards the fixture itself: frame 300 shows six people, all among the best ten rows
    _, _, (detections,) = _reference("centernet")
    top = detections[0, :10]
    assert ((top[:, 5] == 0) & (top[:, 4] > 0.4)).sum() == 6


def test_layout_needs_no_transposes_inside_nanodet(tfjs_models: dict[str, Path]) -> None:
    # NanoDet comes from PyTorch (NCHW input): tracking each tensor's layout removes
    # all 83 Transposes of the TF graph; only the six [1, C, N] -> [1, N, C] heads remain
    model = onnx.load(str(tfjs_models["nanodet"]), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Transpose") == 6
    assert ops.count("Conv") == 34


def _tiny_model(tmp_path: Path, op: str) -> Path:
    """A one-op TF.js graph model (no weights) using ``op``."""
    spec = {
        "format": "graph-model",
        "modelTopology": {
            "node": [
                {
                    "name": "x",
                    "op": "Placeholder",
                    "attr": {
                        "dtype": {"type": "DT_FLOAT"},
                        "shape": {"shape": {"dim": [{"size": "1"}, {"size": "4"}]}},
                    },
                },
                {"name": "y", "op": op, "input": ["x"], "attr": {"T": {"type": "DT_FLOAT"}}},
            ]
        },
        "weightsManifest": [],
        "signature": {"outputs": {"y:0": {"name": "y:0"}}},
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(spec))
    return path


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="Erf"):
        convert(_tiny_model(tmp_path, "Erf"))


def test_supported_tiny_model_runs(tmp_path: Path) -> None:
    model = convert(_tiny_model(tmp_path, "Relu6"))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[-1.0, 0.5, 3.0, 9.0]], np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(y, [[0.0, 0.5, 3.0, 6.0]])


def test_unreadable_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="not a readable TF.js graph model"):
        convert(bad)
