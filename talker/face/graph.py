"""A TensorFlow Lite network as a torch module: the operators of a converted model, run in order.

The face models (mediapipe's detectors and attention face mesh) were converted once by
``tools/convert_face_models.py`` into ``talker/data/face/*.safetensors``: the weights, and the
operator list in the metadata. ``OpGraph`` builds one torch layer per operator and runs them in the
file's order, so a batch of pictures goes through the network on the CPU or a GPU, and nothing of
TFLite or mediapipe is needed at run time.

Layout: 4-D feature maps are NCHW tensors (TFLite's are NHWC) stored channels-last; ``reshape``
turns them back to NHWC first, so flattened outputs keep TFLite's element order. Batches of any
size run through every operator, the three mediapipe ops included (``LandmarksToMatrix``, ``TransformTensor``,
``TransformLandmarks``: affine crops of feature maps around the lips, eyes and irises).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class OpGraph(nn.Module):
    """One converted model: ``forward(x)`` with x (N, 3, H, W) float -> {output name: tensor}.

    Output tensors have TFLite's shapes with N for the batch (for example (N, 2304, 16)).
    """

    def __init__(self, graph: dict, weights: dict[str, torch.Tensor]):
        super().__init__()
        self.input = graph["input"]
        self.outputs = graph["outputs"]
        ops = _fold_pads(graph["ops"])
        self.layers = nn.ModuleList(_layer(op, weights) for op in ops)
        last_use = _last_uses(ops, set(self.outputs.values()))
        # (operator's forward, tensors it reads, tensor it writes, tensors no later step reads): the
        # forward methods are called directly, past nn.Module's hooks (a few microseconds an operator)
        self._plan = [(layer.forward, tuple(_inputs(op)), op["out"], tuple(last_use.get(step, ())))
                      for step, (op, layer) in enumerate(zip(ops, self.layers))]
        self.to(memory_format=torch.channels_last)

    @classmethod
    def load(cls, path: str | Path) -> OpGraph:
        """The model in ``path`` (a safetensors file written by tools/convert_face_models.py), float32, CPU."""
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            graph = json.loads(f.metadata()["graph"])
            weights = {k: f.get_tensor(k).float() for k in f.keys()}
        return cls(graph, weights).eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # channels-last (NHWC in memory): CPU convolutions of these small maps run several times faster
        values: dict[int, torch.Tensor] = {self.input: x.contiguous(memory_format=torch.channels_last)}
        for forward, reads, writes, done in self._plan:
            values[writes] = forward(*[values[i] for i in reads])
            for i in done:
                del values[i]
        return {name: values[i] for name, i in self.outputs.items()}


def _fold_pads(ops: list[dict]) -> list[dict]:
    """The operators with each spatial zero PAD whose only reader is a convolution folded into that
    convolution's own padding (fewer tensors to write; the same result)."""
    readers: dict[int, list[dict]] = {}
    for op in ops:
        for i in _inputs(op):
            readers.setdefault(i, []).append(op)
    folded, out = {}, []
    for op in ops:
        users = readers.get(op["out"], [])
        if (op["op"] == "pad" and op["pads"][4:] == [0, 0] and len(users) == 1 and users[0]["op"] == "conv"
                and not any(users[0]["pads"])):
            folded[op["out"]] = op
            continue
        if op["op"] == "conv" and op["x"] in folded:
            pad = folded[op["x"]]
            op = {**op, "x": pad["x"], "pads": pad["pads"][:4]}
        out.append(op)
    return out


def _inputs(op: dict) -> list[int]:
    """Tensor indices an operator reads, in call order."""
    if op["op"] == "concat":
        return op["xs"]
    return [op[k] for k in ("x", "y", "matrix") if k in op]


def _last_uses(ops: list[dict], keep: set[int]) -> dict[int, list[int]]:
    """{step: tensors no later step reads} (outputs in ``keep`` are never freed)."""
    last: dict[int, int] = {}
    for step, op in enumerate(ops):
        for i in _inputs(op):
            last[i] = step
    out: dict[int, list[int]] = {}
    for i, step in last.items():
        if i not in keep:
            out.setdefault(step, []).append(i)
    return out


def _activation(name: str):
    return {"none": lambda t: t, "relu": F.relu, "relu6": F.relu6}[name]


class Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D: explicit (left, right, top, bottom) zero padding, then the convolution."""

    def __init__(self, op: dict, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        left, right, top, bottom = op["pads"]
        symmetric = left == right and top == bottom
        self.pads = (0, 0, 0, 0) if symmetric else (left, right, top, bottom)
        self.conv = nn.Conv2d(weight.shape[1] * op["groups"], weight.shape[0], tuple(weight.shape[2:]),
                              stride=tuple(op["stride"]), dilation=tuple(op["dilation"]), groups=op["groups"],
                              padding=(top, left) if symmetric else 0)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)
        self.act = _activation(op["act"])

    def forward(self, x):
        if any(self.pads):
            x = F.pad(x, self.pads)
        return self.act(self.conv(x))


class PReLU(nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x):
        return F.prelu(x, self.weight)


class Add(nn.Module):
    def __init__(self, act: str):
        super().__init__()
        self.act = _activation(act)

    def forward(self, x, y):
        return self.act(torch.add(x, y))


class Scale(nn.Module):
    """MUL by a constant (a scalar, or a (1, 4, 4) matrix applied element-wise)."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.clone())

    def forward(self, x):
        return x * self.scale


class Pad(nn.Module):
    """PAD with zeros; pads in torch's order for NCHW: (W0, W1, H0, H1, C0, C1)."""

    def __init__(self, pads: list[int]):
        super().__init__()
        self.pads = tuple(pads)

    def forward(self, x):
        return F.pad(x, self.pads)


class MaxPool(nn.Module):
    def __init__(self, op: dict):
        super().__init__()
        self.pads = tuple(op["pads"])
        self.kernel, self.stride = tuple(op["kernel"]), tuple(op["stride"])

    def forward(self, x):
        if any(self.pads):  # TFLite's SAME pooling never takes the padding as a maximum
            x = F.pad(x, self.pads, value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class Resize(nn.Module):
    """RESIZE_BILINEAR with half-pixel centres (TFLite's option; torch's align_corners=False)."""

    def __init__(self, op: dict):
        super().__init__()
        if op["align_corners"] or not op["half_pixel"]:
            raise NotImplementedError("RESIZE_BILINEAR is supported with half_pixel_centers only")
        self.size = tuple(op["size"])

    def forward(self, x):
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


class DepthToSpace(nn.Module):
    """DEPTH_TO_SPACE in TFLite's channel order ((row, column, channel), unlike torch's pixel_shuffle)."""

    def __init__(self, block: int):
        super().__init__()
        self.block = block

    def forward(self, x):
        n, c, h, w = x.shape
        b = self.block
        x = x.view(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // (b * b), h * b, w * b)


class Reshape(nn.Module):
    """RESHAPE to (N, *shape); a 4-D NCHW input is read in NHWC order, as TFLite does."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], *self.shape)


class Concat(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        if xs[0].dim() == 4:
            raise NotImplementedError("CONCATENATION of feature maps")
        return torch.cat(xs, self.axis)


class LandmarksToMatrix(nn.Module):
    """mediapipe's Landmarks2TransformMatrix (v2): (N, P, 3) landmarks in input pixels -> (N, 4, 4).

    The matrix maps a pixel (x, y, 0, 1) of a ``size`` crop to the feature-map pixel it samples: the
    crop is turned so that landmarks ``left`` -> ``right`` lie at ``target_angle``, centred on the
    ``subset``'s bounding box in that turned frame, and ``scale`` times that box.
    """

    def __init__(self, op: dict):
        super().__init__()
        self.left, self.right, self.target = op["left"], op["right"], op["target_angle"]
        self.register_buffer("subset", torch.tensor(op["subset"], dtype=torch.long))
        self.scale = op["scale"]
        self.out_h, self.out_w = op["size"]

    def forward(self, lm):
        d = lm[:, self.right, :2] - lm[:, self.left, :2]
        r = self.target - torch.atan2(d[:, 1], d[:, 0])  # (N,)
        cos, sin = torch.cos(r), torch.sin(r)
        pts = lm[:, self.subset, :2]
        rx = cos[:, None] * pts[..., 0] - sin[:, None] * pts[..., 1]  # turned by r
        ry = sin[:, None] * pts[..., 0] + cos[:, None] * pts[..., 1]
        x0, x1 = rx.amin(1), rx.amax(1)
        y0, y1 = ry.amin(1), ry.amax(1)
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        cx = cos * mx + sin * my  # turned back by -r
        cy = -sin * mx + cos * my
        sx = self.scale[0] * (x1 - x0) / self.out_w
        sy = self.scale[1] * (y1 - y0) / self.out_h
        # shift(cx, cy) . rotate(-r) . scale(sx, sy) . shift(-out_w / 2, -out_h / 2)
        m = torch.zeros(lm.shape[0], 4, 4, dtype=lm.dtype, device=lm.device)
        m[:, 0, 0], m[:, 0, 1] = cos * sx, sin * sy
        m[:, 1, 0], m[:, 1, 1] = -sin * sx, cos * sy
        m[:, 0, 3] = cx - (cos * sx * self.out_w + sin * sy * self.out_h) / 2
        m[:, 1, 3] = cy - (-sin * sx * self.out_w + cos * sy * self.out_h) / 2
        m[:, 2, 2] = m[:, 3, 3] = 1.0
        return m


class TransformTensor(nn.Module):
    """mediapipe's TransformTensorBilinear (v2): an (N, C, H, W) map sampled on a ``size`` grid through
    the (N, 4, 4) matrix (pixel centres; a sample outside the map is 0, its edge neighbours count 0)."""

    def __init__(self, size: list[int]):
        super().__init__()
        self.out_h, self.out_w = size

    def forward(self, x, m):
        n, c, h, w = x.shape
        ys, xs = torch.meshgrid(torch.arange(self.out_h, dtype=x.dtype, device=x.device),
                                torch.arange(self.out_w, dtype=x.dtype, device=x.device), indexing="ij")
        # pixel-centre correction: T -> S . T . A with A = +0.5, S = -0.5
        tx = m[:, 0, 3] + (m[:, 0, 0] + m[:, 0, 1]) * 0.5 - 0.5
        ty = m[:, 1, 3] + (m[:, 1, 0] + m[:, 1, 1]) * 0.5 - 0.5
        sx = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + tx[:, None, None]  # (N, oh, ow)
        sy = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + ty[:, None, None]
        inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
        x0, y0 = torch.floor(sx), torch.floor(sy)
        fx, fy = sx - x0, sy - y0
        flat = x.reshape(n, c, h * w)

        def corner(yy, xx):
            ok = inside & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().reshape(n, 1, -1).expand(n, c, -1)
            return torch.gather(flat, 2, idx).reshape(n, c, self.out_h, self.out_w) * ok[:, None]

        upper = (1 - fx)[:, None] * corner(y0, x0) + fx[:, None] * corner(y0, x0 + 1)
        lower = (1 - fx)[:, None] * corner(y0 + 1, x0) + fx[:, None] * corner(y0 + 1, x0 + 1)
        return (fy[:, None] * lower + (1 - fy)[:, None] * upper).contiguous(memory_format=torch.channels_last)


class TransformLandmarks(nn.Module):
    """mediapipe's TransformLandmarks (v2): (N, P, 2) points through the (N, 4, 4) matrix's first two rows."""

    def forward(self, pts, m):
        return pts @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 3]


class Identity(nn.Module):
    def forward(self, x):
        return x


def _layer(op: dict, weights: dict[str, torch.Tensor]) -> nn.Module:
    o, kind = op["out"], op["op"]
    if kind == "conv":
        return Conv(op, weights[f"{o}.weight"], weights[f"{o}.bias"])
    if kind == "prelu":
        return PReLU(weights[f"{o}.weight"])
    if kind == "relu":
        return nn.ReLU()
    if kind == "add":
        return Add(op["act"])
    if kind == "mul":
        return Scale(weights[f"{o}.scale"])
    if kind == "pad":
        return Pad(op["pads"])
    if kind == "maxpool":
        return MaxPool(op)
    if kind == "resize":
        return Resize(op)
    if kind == "depth_to_space":
        return DepthToSpace(op["block"])
    if kind == "reshape":
        return Reshape(op["shape"])
    if kind == "concat":
        return Concat(op["axis"])
    if kind == "landmarks_to_matrix":
        return LandmarksToMatrix(op)
    if kind == "transform_tensor":
        return TransformTensor(op["size"])
    if kind == "transform_landmarks":
        return TransformLandmarks()
    if kind == "identity":
        return Identity()
    raise ValueError(f"unknown operator {kind!r} in the face model")
