"""Convert dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``)
to ONNX, reading dlib's own serialisation; only the ``onnx`` package is used.

The file is what ``dlib::serialize(net)`` wrote for the network of dlib's
``dnn_face_recognition_ex.cpp`` (``anet_type``): a 7x7/2 convolution, max pool,
14 residual blocks (3x3 convolutions, affine, relu; four of them halve the size
and add an average-pooled shortcut), a global average pool and a 128-wide
fully-connected layer without bias under ``loss_metric``. dlib's stream is not
self-describing (which wrapper comes next is known only from the C++ type), so
the reader walks that architecture (:data:`ARCHITECTURE`) and checks every
version string and size it meets against it.

The encodings (``dlib/serialize.h``, ``dlib/dnn``): an integer is a control byte
(bit 7: negative, low nibble: how many little-endian bytes follow); a float or
double is ``mantissa * 2**exponent`` as two such integers; a string is its length
then its bytes; a bool is the character ``'1'`` or ``'0'``; a tensor is version 2,
its four dimensions, then raw little-endian float32 values. A network layer
(``add_layer``) writes its version, the whole network below it, then its own
details (a version string such as ``con_4``, then its parameters) and some
training state; tags and skips write only a version and the network below.

The ONNX graph takes ``chip_rgb``: uint8 ``[N, 150, 150, 3]`` RGB chips from
``dlib.get_face_chip``, and gives ``descriptor``: float32 ``[N, 128]``, the same
(unnormalised) vector as ``compute_face_descriptor``. Inputs are normalised as
dlib's ``input_rgb_image_sized`` does: ``(value - channel mean) / 256`` with the
means stored in the file. Each affine layer (batch norm frozen at training's end)
is folded into the convolution before it. Names are fixed and nothing depends on
the time, so converting twice gives the same bytes.

>>> model = convert(Path("dlib_face_recognition_resnet_model_v1.dat"))  # doctest: +SKIP
>>> onnx.save(model, "dlib_face_recognition_resnet_model_v1.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from safecity.errors import ModelError

OPSET = 17
IR_VERSION = 8  # fixed so the produced bytes (and their sha256) do not depend on the onnx version
PRODUCER = "safecity.models.dlib_onnx"
PRODUCER_VERSION = "1"

CHIP_SIZE = 150  # input_rgb_image_sized<150>
INPUT_NAME = "chip_rgb"
OUTPUT_NAME = "descriptor"

# float_details exponents that stand for special values (dlib/float_details.h)
_SPECIAL_EXPONENTS = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}


# --------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class Layer:
    """One layer of ``anet_type``, as its template arguments say.

    ``kind``: con, affine, relu, max_pool, avg_pool, add_prev, fc (computational)
    or tag, skip (wrappers that only name or fetch an earlier output).
    """

    kind: str
    size: int = 0  # con: filters; fc: outputs
    window: int = 0  # con, pools: square window side (0 for a pool: the whole input)
    stride: int = 1
    tag: int = 0  # tag, skip, add_prev: which tag

    @property
    def computational(self) -> bool:
        return self.kind not in ("tag", "skip")


def _con(filters: int, window: int, stride: int) -> Layer:
    return Layer("con", size=filters, window=window, stride=stride)


_AFFINE, _RELU = Layer("affine"), Layer("relu")


def _block(filters: int, stride: int) -> list[Layer]:
    """``block``: con(stride), affine, relu, con, affine."""
    return [_con(filters, 3, stride), _AFFINE, _RELU, _con(filters, 3, 1), _AFFINE]


def _ares(filters: int) -> list[Layer]:
    """``ares``: relu(block(x) + x)."""
    return [Layer("tag", tag=1), *_block(filters, 1), Layer("add_prev", tag=1), _RELU]


def _ares_down(filters: int) -> list[Layer]:
    """``ares_down``: relu(block/2(x) + avg_pool/2(x)), sizes padded with zeros to agree."""
    return [
        Layer("tag", tag=1),
        *_block(filters, 2),
        Layer("tag", tag=2),
        Layer("skip", tag=1),
        Layer("avg_pool", window=2, stride=2),
        Layer("add_prev", tag=2),
        _RELU,
    ]


# dnn_face_recognition_ex.cpp's anet_type, input side first (the order of computation)
ARCHITECTURE: tuple[Layer, ...] = (
    _con(32, 7, 2),
    _AFFINE,
    _RELU,
    Layer("max_pool", window=3, stride=2),
    *(_ares(32) * 3),  # alevel4
    *_ares_down(64),  # alevel3
    *(_ares(64) * 3),
    *_ares_down(128),  # alevel2
    *(_ares(128) * 2),
    *_ares_down(256),  # alevel1
    *(_ares(256) * 2),
    *_ares_down(256),  # alevel0
    Layer("avg_pool", window=0, stride=1),  # avg_pool_everything
    Layer("fc", size=128),  # fc_no_bias
)


# --------------------------------------------------------------------------- reading


class _Stream:
    """dlib's serialisation primitives over the bytes of one file."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.pos = 0
        self.where = where

    def error(self, what: str) -> ModelError:
        return ModelError(
            f"{self.where} is not dlib's face-recognition ResNet: {what} (byte {self.pos})."
        )

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.error("the file ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.error(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return float(np.ldexp(np.float64(mantissa), exponent))

    def string(self) -> str | None:
        """A short text such as a version string; None when what follows is not one."""
        length = self.integer()
        if not 0 < length <= 64 or self.pos + length > len(self.data):
            return None
        try:
            return self.take(length).decode("ascii")
        except UnicodeDecodeError:
            return None

    def boolean(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.error(f"bad bool {ch!r}")
        return ch == b"1"

    def version(self, what: str, *allowed: str) -> str:
        found = self.string()
        if found is None or found not in allowed:
            seen = "something else" if found is None else f"'{found}'"
            raise self.error(f"expected {what} ({' or '.join(allowed)}), found {seen}")
        return found

    def int_version(self, what: str, *allowed: int) -> int:
        found = self.integer()
        if found not in allowed:
            raise self.error(f"unexpected {what} version {found}")
        return found

    def tensor(self) -> np.ndarray:
        """A tensor as float32 of shape (num_samples, k, nr, nc)."""
        self.int_version("tensor", 2)
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.error(f"negative tensor shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(self.take(4 * count), "<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        self.int_version("alias_tensor", 1)
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


@dataclass
class Step:
    """A layer of the file with its parameters (computational layers only carry some)."""

    layer: Layer
    weights: np.ndarray | None = None  # con: (out, in, kh, kw); fc: (in, out)
    bias: np.ndarray | None = None  # con: (out,)
    gamma: np.ndarray | None = None  # affine: (channels,)
    beta: np.ndarray | None = None
    padding: tuple[int, int] = (0, 0)  # con and pools: (y, x)


@dataclass
class DlibResnet:
    """What :func:`load_dlib_resnet` reads: the input means and the layers in order."""

    channel_means: tuple[float, float, float]  # red, green, blue
    steps: list[Step] = field(default_factory=list)


def _read_window(s: _Stream, layer: Layer, what: str) -> tuple[int, int]:
    """nr, nc, stride_y, stride_x, padding_y, padding_x, checked; returns the padding."""
    nr, nc = s.integer(), s.integer()
    stride_y, stride_x = s.integer(), s.integer()
    padding = (s.integer(), s.integer())
    if (nr, nc, stride_y, stride_x) != (layer.window, layer.window, layer.stride, layer.stride):
        raise s.error(
            f"{what} is {nr}x{nc}/{stride_y},{stride_x}, "
            f"expected {layer.window}x{layer.window}/{layer.stride}"
        )
    return padding


def _read_con(s: _Stream, step: Step) -> None:
    s.version("a convolution", "con_4")
    params = s.tensor().reshape(-1)
    filters = s.integer()
    layer = step.layer
    step.padding = _read_window(s, layer, "a convolution")
    if filters != layer.size:
        raise s.error(f"a convolution has {filters} filters, expected {layer.size}")
    shape = s.alias_tensor()
    bias_shape = s.alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.real()
    n_weights = int(np.prod(shape))
    if shape[0] != filters or params.size != n_weights + filters or np.prod(bias_shape) != filters:
        raise s.error(f"a convolution's parameters do not fit its shape {shape}")
    step.weights = params[:n_weights].reshape(shape)
    step.bias = params[n_weights:]


def _read_affine(s: _Stream, step: Step) -> None:
    version = s.version("an affine layer", "affine_", "affine_2")
    params = s.tensor().reshape(-1)
    gamma_shape, beta_shape = s.alias_tensor(), s.alias_tensor()
    if s.integer() != 0:  # dlib's CONV_MODE: one gamma and beta per channel
        raise s.error("an affine layer is not per channel")
    if version == "affine_2" and s.boolean():
        raise s.error("an affine layer is disabled")
    channels = int(np.prod(gamma_shape))
    if params.size != 2 * channels or np.prod(beta_shape) != channels:
        raise s.error("an affine layer's parameters do not fit its shape")
    step.gamma, step.beta = params[:channels], params[channels:]


def _read_pool(s: _Stream, step: Step) -> None:
    kind = step.layer.kind
    s.version(f"a {kind}", f"{kind}_2")
    step.padding = _read_window(s, step.layer, f"a {kind}")


def _read_fc(s: _Stream, step: Step) -> None:
    s.version("the fully-connected layer", "fc_2")
    outputs, inputs = s.integer(), s.integer()
    params = s.tensor().reshape(-1)
    shape = s.alias_tensor()
    s.alias_tensor()  # the bias's shape: empty without a bias
    bias_mode = s.integer()  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for _ in range(4):
        s.real()
    if outputs != step.layer.size or shape[:2] != (inputs, outputs):
        raise s.error(f"the fully-connected layer is {shape}, expected {step.layer.size} outputs")
    if bias_mode != 1 or params.size != inputs * outputs:
        raise s.error("the fully-connected layer has a bias (fc_no_bias expected)")
    step.weights = params.reshape(inputs, outputs)


def _read_plain(name: str):
    def read(s: _Stream, step: Step) -> None:
        s.version(f"a {step.layer.kind} layer", name)

    return read


_DETAILS = {
    "con": _read_con,
    "affine": _read_affine,
    "relu": _read_plain("relu_"),
    "add_prev": _read_plain("add_prev_"),
    "max_pool": _read_pool,
    "avg_pool": _read_pool,
    "fc": _read_fc,
}


def load_dlib_resnet(path: Path) -> DlibResnet:
    """Read a ``dlib_face_recognition_resnet_model_v1.dat``; ModelError if it is anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read dlib model {path}: {exc.strerror or exc}.") from None
    s = _Stream(data, path.name)

    # add_loss_layer: version, loss details, then the network
    s.int_version("loss layer", 1)
    s.version("loss_metric", "loss_metric_2")
    s.real(), s.real()  # margin and distance threshold: training only

    # Headers, outermost layer first; the innermost one also holds the input layer.
    versions: dict[int, int] = {}
    for index in range(len(ARCHITECTURE) - 1, -1, -1):
        layer = ARCHITECTURE[index]
        if not layer.computational:
            s.int_version(f"{layer.kind} layer", 1)
        elif index > 0:
            versions[index] = s.int_version("add_layer", 1, 2)
        else:
            versions[index] = s.int_version("input add_layer", 2, 3)
    s.version("the input layer", "input_rgb_image_sized")
    means = (s.real(), s.real(), s.real())
    if (s.integer(), s.integer()) != (CHIP_SIZE, CHIP_SIZE):
        raise s.error(f"the input is not {CHIP_SIZE}x{CHIP_SIZE}")

    # Details, innermost layer first, each followed by its training state.
    net = DlibResnet(channel_means=means)
    for index, layer in enumerate(ARCHITECTURE):
        step = Step(layer)
        net.steps.append(step)
        if not layer.computational:
            continue
        _DETAILS[layer.kind](s, step)
        for _ in range(3):  # setup called, gradient stale, output disabled
            s.boolean()
        s.tensor(), s.tensor()  # x_grad, cached_output
        if index == 0:
            s.tensor()  # grad_final
            if versions[index] == 3:
                s.integer()  # sample expansion factor
        elif versions[index] == 2:
            s.tensor()  # params_grad
    if s.pos != len(data):
        raise s.error(f"{len(data) - s.pos} bytes are left after the network")
    return net


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Value:
    name: str
    shape: tuple[int, int, int]  # channels, rows, columns (the batch is dynamic)


class _Graph:
    """ONNX nodes and initializers with fixed, position-derived names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def const(self, value: np.ndarray, name: str) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _conv_size(size: int, window: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - window) // stride + 1


def _padded(g: _Graph, v: _Value, shape: tuple[int, int, int], name: str) -> str:
    """``v`` zero-padded at the far end of each axis up to ``shape`` (dlib's add of
    tensors of different sizes adds where both exist and keeps the other elsewhere)."""
    extra = [want - have for want, have in zip(shape, v.shape, strict=True)]
    if not any(extra):
        return v.name
    pads = np.array([0, 0, 0, 0, 0, *extra], np.int64)
    return g.op("Pad", [v.name, g.const(pads, f"{name}/pads")], name, mode="constant")


def _fold_affine(con: Step, affine: Step) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of ``affine(con(x))`` as one convolution."""
    assert con.weights is not None and con.bias is not None
    assert affine.gamma is not None and affine.beta is not None
    gamma = affine.gamma.astype(np.float64)
    weights = con.weights.astype(np.float64) * gamma[:, None, None, None]
    bias = con.bias.astype(np.float64) * gamma + affine.beta.astype(np.float64)
    return weights.astype(np.float32), bias.astype(np.float32)


def build_onnx(net: DlibResnet) -> onnx.ModelProto:
    """The ONNX model of a network read by :func:`load_dlib_resnet`."""
    g = _Graph()
    pixels = g.op("Cast", [INPUT_NAME], "input/float", to=TensorProto.FLOAT)
    means = np.array(net.channel_means, np.float32)
    centred = g.op("Sub", [pixels, g.const(means, "input/means")], "input/centred")
    scaled = g.op("Mul", [centred, g.const(np.float32(1 / 256), "input/scale")], "input/scaled")
    x = _Value(
        g.op("Transpose", [scaled], "input/nchw", perm=[0, 3, 1, 2]), (3, CHIP_SIZE, CHIP_SIZE)
    )

    tags: dict[int, _Value] = {}
    steps = net.steps
    i = 0
    while i < len(steps):
        step, layer, name = steps[i], steps[i].layer, f"l{i:03d}_{steps[i].layer.kind}"
        if layer.kind == "tag":
            tags[layer.tag] = x
        elif layer.kind == "skip":
            x = tags[layer.tag]
        elif layer.kind == "con":
            if i + 1 >= len(steps) or steps[i + 1].layer.kind != "affine":
                raise ModelError("a convolution without its affine layer cannot be converted.")
            weights, bias = _fold_affine(step, steps[i + 1])
            if weights.shape[1] != x.shape[0]:
                raise ModelError(f"convolution {name} expects {weights.shape[1]} channels.")
            (py, px), k, st = step.padding, layer.window, layer.stride
            out = g.op(
                "Conv",
                [x.name, g.const(weights, f"{name}/weights"), g.const(bias, f"{name}/bias")],
                name,
                kernel_shape=[k, k],
                strides=[st, st],
                pads=[py, px, py, px],
            )
            size = (
                layer.size,
                _conv_size(x.shape[1], k, st, py),
                _conv_size(x.shape[2], k, st, px),
            )
            x = _Value(out, size)
            i += 1  # the affine layer is inside the convolution now
        elif layer.kind == "relu":
            x = _Value(g.op("Relu", [x.name], name), x.shape)
        elif layer.kind in ("max_pool", "avg_pool") and layer.window == 0:
            x = _Value(g.op("GlobalAveragePool", [x.name], name), (x.shape[0], 1, 1))
        elif layer.kind in ("max_pool", "avg_pool"):
            (py, px), k, st = step.padding, layer.window, layer.stride
            if (py, px) != (0, 0) and layer.kind == "avg_pool":
                raise ModelError("a padded average pool cannot be converted.")
            op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
            out = g.op(
                op, [x.name], name, kernel_shape=[k, k], strides=[st, st], pads=[py, px, py, px]
            )
            x = _Value(
                out,
                (x.shape[0], _conv_size(x.shape[1], k, st, py), _conv_size(x.shape[2], k, st, px)),
            )
        elif layer.kind == "add_prev":
            other = tags[layer.tag]
            shape = tuple(max(a, b) for a, b in zip(x.shape, other.shape, strict=True))
            a = _padded(g, x, shape, f"{name}/a")  # type: ignore[arg-type]
            b = _padded(g, other, shape, f"{name}/b")  # type: ignore[arg-type]
            x = _Value(g.op("Add", [a, b], name), shape)  # type: ignore[arg-type]
        elif layer.kind == "fc":
            assert step.weights is not None
            flat = g.op("Flatten", [x.name], f"{name}/flat", axis=1)
            if step.weights.shape[0] != int(np.prod(x.shape)):
                raise ModelError(
                    f"the fully-connected layer expects {step.weights.shape[0]} inputs."
                )
            g.op("MatMul", [flat, g.const(step.weights, f"{name}/weights")], OUTPUT_NAME)
            x = _Value(OUTPUT_NAME, (step.weights.shape[1], 1, 1))
        else:
            raise ModelError(f"layer kind {layer.kind} cannot be converted.")
        i += 1
    if x.name != OUTPUT_NAME:
        raise ModelError("the network does not end in its fully-connected layer.")

    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", x.shape[0]])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model)
    return model


def convert(path: Path) -> onnx.ModelProto:
    """dlib's face-recognition ResNet file as an ONNX model (opset 17, float32).

    Raises ModelError when the file is unreadable or not that network.
    """
    return build_onnx(load_dlib_resnet(path))
