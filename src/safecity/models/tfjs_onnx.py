"""Convert a TF.js graph model (``model.json`` + weight shards) to ONNX.

Only the ``onnx`` package is used: the GraphDef nodes of ``modelTopology`` are
translated op by op, weights are read from the shards listed in
``weightsManifest`` (float16 / affine uint8-uint16 quantisation undone), and
sub-graphs made of constants only are folded with numpy at conversion time.

Layout: TF.js tensors are NHWC where ONNX convolutions want NCHW. Rather than
wrapping every convolution in a pair of Transposes, each value remembers the
permutation in which it is physically stored (``Value.perm``); layout-agnostic
ops (activations, element-wise arithmetic, Concat, Pad, Split, keep-dims
reductions) work on the stored layout with remapped axes or permuted constants,
and a Transpose is emitted only where an op needs the logical layout (Reshape,
Gather, graph outputs ...). A graph exported from PyTorch (NCHW input) therefore
comes out with no Transpose left at all.

>>> model = convert(Path("nanodet.json"), outputs=["Identity", "Identity_3"])  # doctest: +SKIP
>>> onnx.save(model, "nanodet.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from safecity.errors import ModelError

OPSET = 17
IR_VERSION = 8  # fixed so the produced bytes (and their sha256) do not depend on the onnx version
PRODUCER = "safecity.models.tfjs_onnx"
PRODUCER_VERSION = "1"

NHWC_TO_NCHW = (0, 3, 1, 2)  # physical = transpose(logical NHWC, this)

_TF_DTYPES: dict[str, np.dtype] = {
    "DT_FLOAT": np.dtype(np.float32),
    "DT_INT32": np.dtype(np.int32),
    "DT_INT64": np.dtype(np.int64),
    "DT_BOOL": np.dtype(np.bool_),
    "DT_UINT8": np.dtype(np.uint8),
    "DT_HALF": np.dtype(np.float16),
}
_MANIFEST_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "int32": np.dtype(np.int32),
    "bool": np.dtype(np.bool_),
    "float16": np.dtype(np.float16),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
}


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TfjsModel:
    """The parts of a TF.js graph model the converter needs."""

    nodes: dict[str, dict[str, Any]]  # GraphDef node by name
    weights: dict[str, np.ndarray]  # Const node name -> value (dequantised)
    inputs: list[str]  # Placeholder names
    outputs: list[str]  # tensor names from the signature ("node" or "node:1")


def _tensor_name(name: str) -> str:
    """``"Identity_2:0"`` -> ``"Identity_2"``; other output indices are kept."""
    return name[:-2] if name.endswith(":0") else name


def load_tfjs(model_json: Path) -> TfjsModel:
    """Read ``model.json`` and its weight shards (which sit beside it)."""
    model_json = Path(model_json)
    try:
        spec = json.loads(model_json.read_text())
        topology = spec["modelTopology"]
        manifest = spec["weightsManifest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{model_json} is not a readable TF.js graph model ({exc}).") from None
    if spec.get("format") not in (None, "graph-model"):
        raise ModelError(f"{model_json} is a TF.js '{spec.get('format')}', not a graph model.")
    if topology.get("library", {}).get("function"):
        raise ModelError(f"{model_json} uses control-flow functions, which are not supported.")
    try:
        nodes = {node["name"]: node for node in topology["node"]}
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{model_json} has a malformed modelTopology ({exc}).") from None

    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        try:
            data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        except OSError as exc:
            raise ModelError(f"weight file of {model_json.name} is unreadable: {exc}.") from None
        offset = 0
        for entry in group["weights"]:
            value, offset = _read_weight(entry, data, offset, model_json.name)
            weights[entry["name"]] = value
        if offset != len(data):
            raise ModelError(
                f"weights of {model_json.name} are {len(data)} bytes, manifest says {offset}."
            )

    signature = spec.get("signature") or {}
    inputs = [n for n, node in nodes.items() if node["op"] == "Placeholder"]
    outputs = [_tensor_name(k) for k in (signature.get("outputs") or {})]
    return TfjsModel(nodes=nodes, weights=weights, inputs=inputs, outputs=outputs)


def _read_weight(
    entry: dict[str, Any], data: bytes, offset: int, where: str
) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in entry["shape"]]
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    dtype = _MANIFEST_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ModelError(
            f"weight {entry['name']} of {where} has unsupported dtype {entry['dtype']}."
        )
    quant = entry.get("quantization")
    stored = _MANIFEST_DTYPES.get(quant["dtype"]) if quant else dtype
    if stored is None:
        raise ModelError(f"weight {entry['name']} of {where} has unsupported quantisation.")
    if offset + count * stored.itemsize > len(data):
        raise ModelError(f"weight file of {where} is truncated at {entry['name']}.")
    raw = np.frombuffer(data, stored, count, offset)
    offset += count * stored.itemsize
    if not quant:
        value = raw.copy()
    elif quant["dtype"] == "float16":
        value = raw.astype(dtype)
    else:  # affine uint8/uint16: value = q * scale + min
        value = (raw.astype(np.float32) * quant["scale"] + quant["min"]).astype(dtype)
    return value.reshape(shape), offset


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Value:
    """A tensor during conversion: a constant, or an ONNX value with a known layout.

    ``perm`` is None when the ONNX tensor is stored in TF's (logical) axis order,
    else the ONNX tensor equals ``np.transpose(logical, perm)``.
    """

    const: np.ndarray | None = None
    name: str = ""
    shape: tuple[int | None, ...] = ()  # logical shape; None = unknown dimension
    dtype: np.dtype = np.dtype(np.float32)
    perm: tuple[int, ...] | None = None

    @property
    def rank(self) -> int:
        return self.const.ndim if self.const is not None else len(self.shape)

    @property
    def logical_shape(self) -> tuple[int | None, ...]:
        return tuple(self.const.shape) if self.const is not None else self.shape


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def _compose(first: Sequence[int], then: Sequence[int]) -> tuple[int, ...]:
    """Permutation equal to transposing by ``first`` then by ``then``."""
    return tuple(first[t] for t in then)


def _is_identity(perm: Sequence[int] | None) -> bool:
    return perm is None or all(i == p for i, p in enumerate(perm))


def _attr(node: dict[str, Any], key: str, default: Any = None) -> Any:
    """Decode one GraphDef attribute from its JSON form."""
    raw = node.get("attr", {}).get(key)
    if raw is None:
        return default
    if "s" in raw:
        return base64.b64decode(raw["s"]).decode()
    if "i" in raw:
        return int(raw["i"])
    if "f" in raw:
        return float(raw["f"])
    if "b" in raw:
        return bool(raw["b"])
    if "type" in raw:
        return _TF_DTYPES.get(raw["type"], raw["type"])
    if "list" in raw:
        lst = raw["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        if "f" in lst:
            return [float(v) for v in lst["f"]]
        return []
    if "shape" in raw:
        return [int(d.get("size", -1)) for d in raw["shape"].get("dim", [])]
    return default


def _broadcast(*shapes: tuple[int | None, ...]) -> tuple[int | None, ...]:
    rank = max(len(s) for s in shapes)
    out: list[int | None] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = [d for d in dims if d is not None and d != 1]
        if known:
            out.append(known[0])
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


# --------------------------------------------------------------------------- builder


class _Builder:
    """Accumulates ONNX nodes and initializers while walking the TF graph."""

    def __init__(self, model: TfjsModel) -> None:
        self.model = model
        self.values: dict[str, Value] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.graph_inputs: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()
        self._transposed: dict[tuple[str, tuple[int, ...]], str] = {}

    # names and emission ------------------------------------------------------
    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}__{k}"
        self._names.add(name)
        return name

    def emit(
        self, op: str, inputs: list[str], base: str, n_out: int = 1, **attrs: Any
    ) -> list[str]:
        outs = [self.fresh(base if i == 0 else f"{base}:{i}") for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=outs[0], **attrs))
        return outs

    def initializer(self, value: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    # layout ------------------------------------------------------------------
    def stored(self, v: Value, perm: tuple[int, ...] | None, base: str) -> str:
        """ONNX name of ``v`` stored as ``transpose(logical, perm)`` (None: logical)."""
        if v.const is not None:
            value = v.const if _is_identity(perm) else np.transpose(v.const, perm)
            return self.initializer(value, base)
        have = v.perm if v.perm is not None else tuple(range(v.rank))
        want = perm if perm is not None else tuple(range(v.rank))
        move = _compose(_inverse(have), want)
        if _is_identity(move):
            return v.name
        key = (v.name, move)
        if key not in self._transposed:
            self._transposed[key] = self.emit(
                "Transpose", [v.name], f"{v.name}/T", perm=list(move)
            )[0]
        return self._transposed[key]

    def logical(self, v: Value, base: str) -> str:
        return self.stored(v, None, base)

    # graph walking -------------------------------------------------------------
    def get(self, ref: str) -> Value:
        key = ref if ":" in ref else f"{ref}:0"
        if key not in self.values:
            raise ModelError(f"tensor {ref} is used before it is defined.")
        return self.values[key]

    def set(self, node_name: str, values: Sequence[Value]) -> None:
        for i, v in enumerate(values):
            self.values[f"{node_name}:{i}"] = v


def _sym(
    name: str, shape: Sequence[int | None], dtype: Any, perm: Sequence[int] | None = None
) -> Value:
    p = None if perm is None or _is_identity(perm) else tuple(perm)
    return Value(name=name, shape=tuple(shape), dtype=np.dtype(dtype), perm=p)


def _const(node: dict[str, Any], b: _Builder, ins: list[Value]) -> list[Value]:
    name = node["name"]
    if name not in b.model.weights:
        raise ModelError(f"constant {name} has no value in the weights manifest.")
    return [Value(const=b.model.weights[name])]


def _placeholder(node: dict[str, Any], b: _Builder, ins: list[Value]) -> list[Value]:
    shape = _attr(node, "shape", [])
    dtype = _attr(node, "dtype", np.dtype(np.float32))
    dims: list[int | str] = [d if d >= 0 else "N" for d in shape]
    name = b.fresh(node["name"])
    b.graph_inputs.append(
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), dims)
    )
    return [_sym(name, [d if d >= 0 else None for d in shape], dtype)]


# --------------------------------------------------------------------------- numpy folding


def _slices(node: dict[str, Any], rank: int, begin, end, strides):
    """Translate StridedSlice masks into python slices (+ axes to squeeze)."""
    if _attr(node, "ellipsis_mask", 0) or _attr(node, "new_axis_mask", 0):
        raise ModelError(f"StridedSlice {node['name']} uses ellipsis/new-axis masks (unsupported).")
    bm, em, sm = (_attr(node, k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
    index: list[slice | int] = []
    squeeze: list[int] = []
    for i in range(rank):
        if i >= len(begin):
            index.append(slice(None))
            continue
        if sm >> i & 1:
            index.append(int(begin[i]))
            squeeze.append(i)
            continue
        start = None if bm >> i & 1 else int(begin[i])
        stop = None if em >> i & 1 else int(end[i])
        index.append(slice(start, stop, int(strides[i])))
    return tuple(index), squeeze


def _np_sparse_to_dense(indices, shape, values, default) -> np.ndarray:
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    out = np.full(shape, default, dtype=np.asarray(values).dtype)
    idx = np.asarray(indices, np.int64).reshape(-1, len(shape))
    vals = np.broadcast_to(np.asarray(values), (len(idx),))
    for i, v in zip(idx, vals, strict=True):
        out[tuple(i)] = v
    return out


def _fold(op: str, node: dict[str, Any], x: list[np.ndarray]) -> list[np.ndarray] | None:
    """numpy value of an op whose inputs are all constants (None: not foldable)."""
    binary: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "Add": np.add,
        "AddV2": np.add,
        "BiasAdd": np.add,
        "Sub": np.subtract,
        "Mul": np.multiply,
        "RealDiv": np.divide,
        "FloorDiv": np.floor_divide,
        "FloorMod": np.mod,
        "Maximum": np.maximum,
        "Minimum": np.minimum,
        "Equal": np.equal,
    }
    if op in binary:
        out = binary[op](x[0], x[1])
        return [np.asarray(out, dtype=np.result_type(x[0], x[1]) if op != "Equal" else bool)]
    if op == "Identity":
        return [x[0]]
    if op == "Cast":
        return [x[0].astype(_attr(node, "DstT"))]
    if op == "Reshape":
        return [x[0].reshape([int(d) for d in x[1].reshape(-1)])]
    if op == "Transpose":
        return [np.transpose(x[0], [int(p) for p in x[1]])]
    if op == "ConcatV2":
        return [np.concatenate(x[:-1], axis=int(x[-1]))]
    if op == "Pack":
        return [np.stack(x, axis=_attr(node, "axis", 0))]
    if op == "ExpandDims":
        return [np.expand_dims(x[0], int(x[1]))]
    if op == "Squeeze":
        dims = _attr(node, "squeeze_dims", [])
        return [np.squeeze(x[0], axis=tuple(dims) if dims else None)]
    if op == "StridedSlice":
        index, squeeze = _slices(node, x[0].ndim, x[1], x[2], x[3])
        return [x[0][index]]  # integer indices already drop the shrunk axes
    if op == "GatherV2":
        return [np.take(x[0], x[1], axis=int(x[2]))]
    if op == "SparseToDense":
        return [_np_sparse_to_dense(*x)]
    return None


# --------------------------------------------------------------------------- op handlers

# ops that are only supported when all their inputs are constants (folded with numpy)
_FOLD_ONLY = {"SparseToDense", "Pack"}

_Handler = Callable[[dict[str, Any], _Builder, list[Value]], list[Value]]
_HANDLERS: dict[str, _Handler] = {"Const": _const, "Placeholder": _placeholder}


def _handles(*ops: str) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        for op in ops:
            _HANDLERS[op] = fn
        return fn

    return register


def _choose_perm(ins: list[Value], rank: int) -> tuple[int, ...] | None:
    """Layout for an element-wise op: that of its first full-rank permuted input."""
    for v in ins:
        if v.const is None and v.rank == rank and v.perm is not None:
            return v.perm
    return None


def _operand(b: _Builder, v: Value, perm: tuple[int, ...] | None, rank: int, base: str) -> str:
    """Input of a broadcasting op in layout ``perm`` (constants reshaped, then permuted)."""
    if v.const is not None:
        c = v.const
        if perm is not None and c.ndim > 0:
            c = np.transpose(c.reshape((1,) * (rank - c.ndim) + c.shape), perm)
        return b.initializer(c, base)
    if perm is not None and v.rank != rank:
        raise AssertionError("unreachable: _elementwise falls back to logical layout")
    return b.stored(v, perm, base)


def _elementwise(
    b: _Builder,
    node: dict[str, Any],
    ins: list[Value],
    onnx_op: str,
    out_dtype: Any = None,
    **attrs,
) -> Value:
    shape = _broadcast(*(v.logical_shape for v in ins))
    rank = len(shape)
    perm = _choose_perm(ins, rank)
    if perm is not None and any(v.const is None and v.rank != rank for v in ins):
        perm = None  # mixed ranks of computed tensors: work in logical layout
    names = [_operand(b, v, perm, rank, f"{node['name']}/in{i}") for i, v in enumerate(ins)]
    out = b.emit(onnx_op, names, node["name"], **attrs)[0]
    dtype = out_dtype if out_dtype is not None else _dtype_of(ins[0])
    return _sym(out, shape, dtype, perm)


def _dtype_of(v: Value) -> np.dtype:
    return v.const.dtype if v.const is not None else v.dtype


_BINARY = {
    "Add": "Add",
    "AddV2": "Add",
    "BiasAdd": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Maximum": "Max",
    "Minimum": "Min",
}


@_handles(*_BINARY)
def _binary(node, b, ins):
    return [_elementwise(b, node, ins, _BINARY[node["op"]])]


@_handles("Equal")
def _compare(node, b, ins):
    return [_elementwise(b, node, ins, node["op"], out_dtype=np.bool_)]


@_handles("FloorDiv", "FloorMod")
def _floor_ops(node, b, ins):
    integer = np.issubdtype(_dtype_of(ins[0]), np.integer)
    name = node["name"]
    if node["op"] == "FloorMod" and integer:
        return [_elementwise(b, node, ins, "Mod", fmod=0)]  # ONNX fmod=0: sign of divisor
    if integer:  # exact: (a - a mod b) / b
        mod = _elementwise(b, {"name": f"{name}/mod"}, ins, "Mod", fmod=0)
        diff = _elementwise(b, {"name": f"{name}/sub"}, [ins[0], mod], "Sub")
        return [_elementwise(b, node, [diff, ins[1]], "Div")]
    quotient = _elementwise(b, {"name": f"{name}/div"}, ins, "Div")
    floor = _unary_value(b, f"{name}/floor", quotient, "Floor")
    if node["op"] == "FloorDiv":
        return [floor]
    prod = _elementwise(b, {"name": f"{name}/mul"}, [ins[1], floor], "Mul")
    return [_elementwise(b, node, [ins[0], prod], "Sub")]


def _unary_value(b: _Builder, name: str, v: Value, onnx_op: str, **attrs) -> Value:
    src = b.stored(v, v.perm, name)  # keep whatever layout the input has
    out = b.emit(onnx_op, [src], name, **attrs)[0]
    return _sym(out, v.logical_shape, _dtype_of(v), v.perm)


_UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid"}


@_handles(*_UNARY)
def _unary(node, b, ins):
    return [_unary_value(b, node["name"], ins[0], _UNARY[node["op"]])]


@_handles("Identity")
def _identity(node, b, ins):
    return [ins[0]]


@_handles("LeakyRelu")
def _leaky_relu(node, b, ins):
    return [_unary_value(b, node["name"], ins[0], "LeakyRelu", alpha=_attr(node, "alpha", 0.2))]


def _clip(b: _Builder, name: str, v: Value, lo: float, hi: float) -> Value:
    src = b.stored(v, v.perm, name)
    lo_name = b.initializer(np.array(lo, np.float32), f"{name}/min")
    hi_name = b.initializer(np.array(hi, np.float32), f"{name}/max")
    out = b.emit("Clip", [src, lo_name, hi_name], name)[0]
    return _sym(out, v.logical_shape, _dtype_of(v), v.perm)


@_handles("Relu6")
def _relu6(node, b, ins):
    return [_clip(b, node["name"], ins[0], 0.0, 6.0)]


@_handles("Cast")
def _cast(node, b, ins):
    dst = _attr(node, "DstT")
    if not isinstance(dst, np.dtype):
        raise ModelError(f"Cast {node['name']} to {dst} is not supported.")
    v = ins[0]
    out = b.emit(
        "Cast",
        [b.stored(v, v.perm, node["name"])],
        node["name"],
        to=helper.np_dtype_to_tensor_dtype(dst),
    )[0]
    return [_sym(out, v.logical_shape, dst, v.perm)]


# convolution family -------------------------------------------------------------


def _conv_pads(
    node: dict[str, Any], in_hw: Sequence[int | None], k_hw: Sequence[int], strides, dilations
) -> dict[str, Any]:
    padding = _attr(node, "padding", "VALID")
    if padding == "VALID":
        return {"pads": [0, 0, 0, 0]}
    if padding == "EXPLICIT":
        ex = _attr(node, "explicit_paddings", [])  # pairs per NHWC (or NCHW) dim
        fmt = _attr(node, "data_format", "NHWC")
        h, w = (1, 2) if fmt == "NHWC" else (2, 3)
        return {"pads": [ex[2 * h], ex[2 * w], ex[2 * h + 1], ex[2 * w + 1]]}
    if padding != "SAME":
        raise ModelError(f"{node['op']} {node['name']} has unsupported padding {padding}.")
    if any(d is None for d in in_hw):
        return {"auto_pad": "SAME_UPPER"}  # TF SAME puts the odd pixel at the end, as SAME_UPPER
    begin, end = [], []
    for size, k, s, d in zip(in_hw, k_hw, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return {"pads": begin + end}


def _spatial(node: dict[str, Any], v: Value) -> tuple[tuple[int, ...] | None, list[int | None]]:
    """Storage perm giving NCHW for this op's input, and its logical N, C, H, W sizes."""
    fmt = _attr(node, "data_format", "NHWC")
    if v.rank != 4:
        raise ModelError(f"{node['op']} {node['name']} needs a 4-d input, got rank {v.rank}.")
    n, a, bb, c = v.logical_shape
    if fmt == "NHWC":
        return NHWC_TO_NCHW, [n, c, a, bb]
    if fmt == "NCHW":
        return None, [n, a, bb, c]
    raise ModelError(f"{node['op']} {node['name']} has unsupported data_format {fmt}.")


def _hw(values: list[int], node: dict[str, Any]) -> list[int]:
    fmt = _attr(node, "data_format", "NHWC")
    return values[1:3] if fmt == "NHWC" else values[2:4]


def _out_nchw_shape(
    nchw: list[int | None],
    channels: int,
    kernel: Sequence[int],
    conv_attrs: dict[str, Any],
    strides,
) -> list[int | None]:
    hw: list[int | None] = []
    for i, size in enumerate(nchw[2:]):
        if size is None:
            hw.append(None)
        elif "auto_pad" in conv_attrs:
            hw.append(-(-size // strides[i]))
        else:
            pads = conv_attrs["pads"]
            dil = conv_attrs.get("dilations", [1, 1])[i]
            span = (kernel[i] - 1) * dil + 1
            hw.append((size + pads[i] + pads[i + 2] - span) // strides[i] + 1)
    return [nchw[0], channels, *hw]


def _as_logical(node: dict[str, Any], nchw_shape: list[int | None]) -> tuple[int | None, ...]:
    if _attr(node, "data_format", "NHWC") == "NHWC":
        n, c, h, w = nchw_shape
        return (n, h, w, c)
    return tuple(nchw_shape)


def _fused_activation(b: _Builder, node: dict[str, Any], v: Value, ops: list[str]) -> Value:
    name = node["name"]
    for op in ops:
        if op == "Relu":
            v = _unary_value(b, f"{name}/relu", v, "Relu")
        elif op == "Relu6":
            v = _clip(b, f"{name}/relu6", v, 0.0, 6.0)
        elif op == "LeakyRelu":
            alpha = _attr(node, "leakyrelu_alpha", 0.2)
            v = _unary_value(b, f"{name}/leakyrelu", v, "LeakyRelu", alpha=alpha)
        else:
            raise ModelError(f"{node['op']} {name} fuses unsupported op {op}.")
    return v


def _split_fused(node: dict[str, Any]) -> tuple[bool, list[str]]:
    """(has BiasAdd, activations after it) of a _Fused* node."""
    fused = _attr(node, "fused_ops", [])
    has_bias = bool(fused) and fused[0] == "BiasAdd"
    rest = fused[1:] if has_bias else fused
    if _attr(node, "num_args", 1 if has_bias else 0) != (1 if has_bias else 0):
        raise ModelError(f"{node['op']} {node['name']} has fused ops {fused} (unsupported).")
    return has_bias, rest


@_handles("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
def _conv(node, b, ins):
    op, name = node["op"], node["name"]
    x, w = ins[0], ins[1]
    if w.const is None:
        raise ModelError(f"{op} {name} has a computed filter (unsupported).")
    perm, nchw = _spatial(node, x)
    kh, kw, cin, cout = w.const.shape
    depthwise = "Depthwise" in op
    if depthwise:
        weight = np.transpose(w.const, (2, 3, 0, 1)).reshape(cin * cout, 1, kh, kw)
        channels, group = cin * cout, cin
    else:
        weight = np.transpose(w.const, (3, 2, 0, 1))
        channels = cout
        group = (nchw[1] // cin) if nchw[1] else 1
    strides = _hw(_attr(node, "strides", [1, 1, 1, 1]), node)
    dilations = _hw(_attr(node, "dilations", [1, 1, 1, 1]), node)
    attrs = _conv_pads(node, nchw[2:], (kh, kw), strides, dilations)
    attrs.update(strides=strides, dilations=dilations, kernel_shape=[kh, kw], group=group)
    inputs = [b.stored(x, perm, f"{name}/x"), b.initializer(weight.astype(np.float32), f"{name}/W")]
    has_bias, acts = _split_fused(node) if op.startswith(("_Fused", "Fused")) else (False, [])
    if has_bias:
        bias = ins[2]
        if bias.const is None:
            raise ModelError(f"{op} {name} has a computed bias (unsupported).")
        inputs.append(b.initializer(bias.const.reshape(-1).astype(np.float32), f"{name}/B"))
    out = b.emit("Conv", inputs, name if not acts else f"{name}/conv", **attrs)[0]
    shape = _out_nchw_shape(nchw, channels, (kh, kw), attrs, strides)
    value = _sym(out, _as_logical(node, shape), np.float32, perm)
    return [_fused_activation(b, node, value, acts)]


@_handles("MaxPool")
def _pool(node, b, ins):
    x = ins[0]
    perm, nchw = _spatial(node, x)
    ksize = _hw(_attr(node, "ksize"), node)
    strides = _hw(_attr(node, "strides"), node)
    attrs = _conv_pads(node, nchw[2:], ksize, strides, [1, 1])
    attrs.update(kernel_shape=ksize, strides=strides)  # ONNX pads MaxPool with -inf, as TF
    out = b.emit("MaxPool", [b.stored(x, perm, f"{node['name']}/x")], node["name"], **attrs)[0]
    shape = _out_nchw_shape(nchw, nchw[1], ksize, attrs, strides)
    return [_sym(out, _as_logical(node, shape), np.float32, perm)]


@_handles("ResizeBilinear")
def _resize(node, b, ins):
    x, size = ins
    if size.const is None:
        raise ModelError(f"{node['op']} {node['name']} has a computed size (unsupported).")
    h, w = (int(s) for s in size.const.reshape(-1))
    n, hh, ww, c = x.logical_shape  # TF resize ops are NHWC only
    if _attr(node, "align_corners", False):
        mode = "align_corners"
    elif _attr(node, "half_pixel_centers", False):
        mode = "half_pixel"  # clamps like TF: source index below 0 reads pixel 0
    else:
        mode = "asymmetric"  # TF's legacy default: source = dest * in / out
    name = node["name"]
    inputs = [b.stored(x, NHWC_TO_NCHW, f"{name}/x"), ""]
    if n is not None and c is not None:
        inputs += ["", b.initializer(np.array([n, c, h, w], np.int64), f"{name}/sizes")]
    elif hh and ww:
        scales = np.array([1, 1, h / hh, w / ww], np.float32)
        inputs += [b.initializer(scales, f"{name}/scales")]
    else:
        raise ModelError(f"{node['op']} {name} needs known input sizes.")
    attrs = {"coordinate_transformation_mode": mode, "mode": "linear"}
    out = b.emit("Resize", inputs, name, **attrs)[0]
    return [_sym(out, (n, h, w, c), np.float32, NHWC_TO_NCHW)]


# shape and layout ops --------------------------------------------------------------


def _const_input(node: dict[str, Any], v: Value, what: str) -> np.ndarray:
    if v.const is None:
        raise ModelError(f"{node['op']} {node['name']} has a computed {what} (unsupported).")
    return v.const


@_handles("Transpose")
def _transpose(node, b, ins):
    x = ins[0]
    perm = [int(p) for p in _const_input(node, ins[1], "permutation")]
    have = x.perm if x.perm is not None else tuple(range(x.rank))
    # stored = transpose(L, have) and out = transpose(L, perm),
    # so stored = transpose(out, inv(perm)[have]): the Transpose itself costs nothing
    new_perm = _compose(_inverse(perm), have)
    shape = tuple(x.logical_shape[p] for p in perm)
    return [_sym(x.name, shape, x.dtype, new_perm)]


@_handles("Reshape")
def _reshape(node, b, ins):
    x = ins[0]
    target = [int(d) for d in _const_input(node, ins[1], "shape").reshape(-1)]
    if 0 in target:
        raise ModelError(f"Reshape {node['name']} to a zero-sized dimension is not supported.")
    known = [d for d in x.logical_shape if d is not None]
    shape: list[int | None] = list(target)
    if -1 in target and len(known) == x.rank:
        rest = int(np.prod([d for d in target if d != -1]))
        shape[target.index(-1)] = int(np.prod(known)) // rest
    shape = [None if d == -1 else d for d in shape]
    name = node["name"]
    shape_name = b.initializer(np.array(target, np.int64), f"{name}/shape")
    out = b.emit("Reshape", [b.logical(x, f"{name}/x"), shape_name], name)[0]
    return [_sym(out, shape, _dtype_of(x))]


@_handles("ExpandDims")
def _expand_dims(node, b, ins):
    x = ins[0]
    axis = int(_const_input(node, ins[1], "axis"))
    axis = axis if axis >= 0 else x.rank + 1 + axis
    name = node["name"]
    axes = b.initializer(np.array([axis], np.int64), f"{name}/axes")
    out = b.emit("Unsqueeze", [b.logical(x, f"{name}/x"), axes], name)[0]
    shape = list(x.logical_shape)
    shape.insert(axis, 1)
    return [_sym(out, shape, _dtype_of(x))]


@_handles("ConcatV2")
def _concat(node, b, ins):
    parts, axis_v = ins[:-1], ins[-1]
    rank = parts[0].rank
    axis = int(_const_input(node, axis_v, "axis")) % rank
    perm = _choose_perm(parts, rank)
    name = node["name"]
    names = [_operand(b, v, perm, rank, f"{name}/in{i}") for i, v in enumerate(parts)]
    stored_axis = perm.index(axis) if perm is not None else axis
    out = b.emit("Concat", names, name, axis=stored_axis)[0]
    shape = list(parts[0].logical_shape)
    sizes = [v.logical_shape[axis] for v in parts]
    shape[axis] = None if any(s is None for s in sizes) else int(sum(sizes))
    return [_sym(out, shape, _dtype_of(parts[0]), perm)]


@_handles("Pad", "PadV2")
def _pad(node, b, ins):
    x = ins[0]
    pads = _const_input(node, ins[1], "padding").astype(np.int64).reshape(-1, 2)
    perm = x.perm
    order = list(perm) if perm is not None else list(range(x.rank))
    stored = pads[order]  # stored dim k is logical dim perm[k]
    name = node["name"]
    inputs = [b.stored(x, perm, f"{name}/x")]
    inputs.append(b.initializer(np.concatenate([stored[:, 0], stored[:, 1]]), f"{name}/pads"))
    if node["op"] == "PadV2":
        value = np.asarray(_const_input(node, ins[2], "pad value"), dtype=_dtype_of(x))
        inputs.append(b.initializer(value.reshape(()), f"{name}/value"))
    out = b.emit("Pad", inputs, name)[0]
    shape = [
        None if d is None else d + int(p[0] + p[1])
        for d, p in zip(x.logical_shape, pads, strict=True)
    ]
    return [_sym(out, shape, _dtype_of(x), perm)]


@_handles("SplitV")
def _split(node, b, ins):
    x, sizes_v, axis_v = ins
    axis = int(_const_input(node, axis_v, "axis")) % x.rank
    sizes = [int(s) for s in _const_input(node, sizes_v, "split sizes")]
    if -1 in sizes:
        total = x.logical_shape[axis]
        if total is None:
            raise ModelError(f"SplitV {node['name']} needs a known axis size.")
        sizes[sizes.index(-1)] = total - (sum(sizes) + 1)
    perm = x.perm
    stored_axis = perm.index(axis) if perm is not None else axis
    name = node["name"]
    split = b.initializer(np.array(sizes, np.int64), f"{name}/split")
    outs = b.emit(
        "Split", [b.stored(x, perm, f"{name}/x"), split], name, n_out=len(sizes), axis=stored_axis
    )
    values = []
    for out, size in zip(outs, sizes, strict=True):
        shape = list(x.logical_shape)
        shape[axis] = size
        values.append(_sym(out, shape, _dtype_of(x), perm))
    return values


@_handles("Mean")
def _reduce(node, b, ins):
    x = ins[0]
    axes = [int(a) % x.rank for a in _const_input(node, ins[1], "axes").reshape(-1)]
    keep = _attr(node, "keep_dims", False)
    perm = x.perm if keep else None  # without keep_dims the remaining axes must be logical
    stored_axes = sorted(perm.index(a) for a in axes) if perm is not None else sorted(axes)
    name = node["name"]
    src = b.stored(x, perm, f"{name}/x")
    out = b.emit("ReduceMean", [src], name, axes=stored_axes, keepdims=int(keep))[0]
    shape = [1 if i in axes else d for i, d in enumerate(x.logical_shape) if keep or i not in axes]
    return [_sym(out, shape, _dtype_of(x), perm)]


@_handles("StridedSlice")
def _strided_slice(node, b, ins):
    x = ins[0]
    begin, end, strides = (_const_input(node, v, "slice bound") for v in ins[1:4])
    index, squeeze = _slices(node, x.rank, begin, end, strides)
    starts, ends, axes, steps, shape = [], [], [], [], []
    big = np.iinfo(np.int64).max
    for axis, (item, size) in enumerate(zip(index, x.logical_shape, strict=True)):
        if isinstance(item, int):
            starts.append(item)
            ends.append(item + 1 if item != -1 else big)
            axes.append(axis)
            steps.append(1)
            shape.append(1)
            continue
        if item == slice(None):
            shape.append(size)
            continue
        step = item.step or 1
        starts.append(item.start if item.start is not None else (0 if step > 0 else big))
        ends.append(item.stop if item.stop is not None else (big if step > 0 else -big))
        axes.append(axis)
        steps.append(step)
        shape.append(len(range(size)[item]) if size is not None else None)
    name = node["name"]
    src = b.logical(x, f"{name}/x")
    consts = [
        b.initializer(np.array(v, np.int64), f"{name}/{k}")
        for k, v in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))
    ]
    out = b.emit("Slice", [src, *consts], name if not squeeze else f"{name}/slice")[0]
    if squeeze:
        sq = b.initializer(np.array(squeeze, np.int64), f"{name}/squeeze")
        out = b.emit("Squeeze", [out, sq], name)[0]
        shape = [d for i, d in enumerate(shape) if i not in squeeze]
    return [_sym(out, shape, _dtype_of(x))]


@_handles("GatherV2")
def _gather(node, b, ins):
    params, indices, axis_v = ins
    if _attr(node, "batch_dims", 0):
        raise ModelError(f"GatherV2 {node['name']} with batch_dims is not supported.")
    axis = int(_const_input(node, axis_v, "axis")) % params.rank
    name = node["name"]
    src = b.logical(params, f"{name}/params")
    idx = b.logical(indices, f"{name}/indices")
    out = b.emit("Gather", [src, idx], name, axis=axis)[0]
    pshape = list(params.logical_shape)
    shape = pshape[:axis] + list(indices.logical_shape) + pshape[axis + 1 :]
    return [_sym(out, shape, _dtype_of(params))]


@_handles("TopKV2")
def _top_k(node, b, ins):
    x = ins[0]
    k = int(_const_input(node, ins[1], "k"))
    name = node["name"]
    k_name = b.initializer(np.array([k], np.int64), f"{name}/k")
    values, indices = b.emit(
        "TopK", [b.logical(x, f"{name}/x"), k_name], name, n_out=2, axis=-1, largest=1, sorted=1
    )
    # TF returns int32 indices and the graph continues in int32 arithmetic
    indices = b.emit("Cast", [indices], f"{name}:1", to=TensorProto.INT32)[0]
    shape = list(x.logical_shape[:-1]) + [k]
    return [_sym(values, shape, _dtype_of(x)), _sym(indices, shape, np.int32)]


# --------------------------------------------------------------------------- driver


def _ordered(model: TfjsModel, outputs: Sequence[str]) -> list[str]:
    """Names of the nodes the outputs depend on, inputs first (iterative DFS)."""
    order: list[str] = []
    state: dict[str, int] = {}
    stack: list[tuple[str, bool]] = [(o.split(":")[0], False) for o in reversed(outputs)]
    while stack:
        name, done = stack.pop()
        if done:
            state[name] = 2
            order.append(name)
            continue
        if state.get(name):
            continue
        if name not in model.nodes:
            raise ModelError(f"the graph has no node named {name}.")
        state[name] = 1
        stack.append((name, True))
        for ref in model.nodes[name].get("input", []):
            if ref.startswith("^"):
                continue  # control dependency: no data flows
            dep = ref.split(":")[0]
            if state.get(dep) == 1:
                raise ModelError(f"the graph has a cycle through {dep}.")
            if not state.get(dep):
                stack.append((dep, False))
    return order


def convert(model_json: Path, outputs: Sequence[str] | None = None) -> onnx.ModelProto:
    """Convert a TF.js graph model to an ONNX model (opset 17, float32).

    ``outputs`` names the tensors to expose (default: the model's signature
    outputs), in that order; the ONNX outputs carry the same names.
    Raises ModelError for an unreadable model or an unsupported op.
    """
    model = load_tfjs(Path(model_json))
    wanted = [_tensor_name(o) for o in (outputs or model.outputs)]
    if not wanted:
        raise ModelError(f"{Path(model_json).name} names no outputs; pass them explicitly.")
    order = _ordered(model, wanted)
    unsupported = sorted({model.nodes[n]["op"] for n in order} - set(_HANDLERS) - _FOLD_ONLY)
    if unsupported:
        raise ModelError(
            f"{Path(model_json).name} uses TF op(s) {', '.join(unsupported)} "
            "that the TF.js-to-ONNX converter does not support."
        )
    b = _Builder(model)
    b._names.update(wanted)  # outputs keep their TF names; nothing else may take them
    for name in order:
        node = model.nodes[name]
        ins = [b.get(ref) for ref in node.get("input", []) if not ref.startswith("^")]
        if ins and all(v.const is not None for v in ins):
            folded = _fold(node["op"], node, [v.const for v in ins])  # type: ignore[misc]
            if folded is not None:
                b.set(name, [Value(const=np.asarray(f)) for f in folded])
                continue
        if node["op"] not in _HANDLERS:
            raise ModelError(f"{node['op']} node {name} has computed inputs (unsupported).")
        try:
            b.set(name, _HANDLERS[node["op"]](node, b, ins))
        except ModelError:
            raise
        except Exception as exc:  # a malformed node: say which one
            raise ModelError(f"cannot convert {node['op']} node {name}: {exc}.") from None

    graph_outputs = []
    for out in wanted:
        v = b.get(out)
        src = b.logical(v, f"{out}/out")
        b.nodes.append(helper.make_node("Identity", [src], [out], name=f"{out}/output"))
        dims = [d if d is not None else f"d{i}" for i, d in enumerate(v.logical_shape)]
        graph_outputs.append(
            helper.make_tensor_value_info(out, helper.np_dtype_to_tensor_dtype(_dtype_of(v)), dims)
        )
    graph = helper.make_graph(b.nodes, "tfjs", b.graph_inputs, graph_outputs, b.initializers)
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        ir_version=IR_VERSION,
    )
    try:
        onnx.checker.check_model(onnx_model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(
            f"the converted {Path(model_json).name} is not valid ONNX: {exc}"
        ) from None
    return onnx_model
