"""The fast inference graph of the renderer (CUDA-oriented, also runs on CPU).

Same mathematics as the reference modules, rearranged for speed:

* source-only work runs once per clip: canonical keypoints, the generator's 3-D feature volume and
  its compressed copy for the dense-motion network (SadTalker recomputes them for every batch);
* BatchNorm folded into the convolution before it; spectral norm folded into plain weights;
* SPADE: the ``mlp_shared`` convolutions that read the same segmentation map are fused into one
  convolution (all twelve of the middle blocks, three per up block), ``mlp_gamma``/``mlp_beta``
  into one, ``1 + gamma`` folded into the bias, and both SPADEs of a block that normalise the
  same input share one instance norm; in the up blocks the shared convolution of the nearest-
  upsampled map runs at the low resolution (``UpsampledConv``: 2.25x / 5.8x fewer FLOPs);
* the dense motion network's two convolutions with few output channels are rewritten for tensor
  cores: the 7x7x7 mask convolution as a 2-D one over depth slices (``DepthSlicedConv3d``), the
  one-channel 7x7 occlusion convolution as a 1x1 one to its 49 taps (``TapSumConv2d``);
* convolutions in float16 / bfloat16 (weights cast once) and channels-last on CUDA; keypoint
  geometry, feature sampling, the motion mask softmax and the warp stay in float32;
* fixed batch shape (the last batch is padded), so ``torch.compile`` and CUDA-graph capture see one
  shape; ``FrameGraph`` takes its per-batch inputs as tensors (no Python branches on data).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from renderer.sadtalker.generator import OcclusionAwareSPADEGenerator
from renderer.sadtalker.keypoints import bins_to_pose, posed_keypoints, transform_keypoints
from renderer.sadtalker.spade import SPADE, SPADEDecoder, SPADEResnetBlock, SpectralNormConv2d

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def fold_batchnorm(conv: nn.Module, norm: nn.Module) -> nn.Module:
    """A copy of ``conv`` computing norm(conv(x)) for an inference-mode BatchNorm ``norm``."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter(conv.weight * scale.reshape(-1, *[1] * (conv.weight.dim() - 1)), requires_grad=False)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    folded.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias, requires_grad=False)
    return folded


def fold_conv_norm_pairs(module: nn.Module) -> nn.Module:
    """Fold every (``conv``, ``norm``: BatchNorm) attribute pair inside ``module`` in place; norm -> Identity."""
    for m in list(module.modules()):
        conv, norm = getattr(m, "conv", None), getattr(m, "norm", None)
        if isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            m.conv = fold_batchnorm(conv, norm)
            m.norm = nn.Identity()
    return module


def _conv2d(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    out, cin, k, _ = weight.shape
    conv = nn.Conv2d(cin, out, k, padding=k // 2, bias=bias is not None, device=weight.device)
    conv.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    if bias is not None:
        conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return conv


def plain_conv(sn: SpectralNormConv2d) -> nn.Conv2d:
    """The spectral-norm convolution with its normalised weight baked in."""
    return _conv2d(sn.weight(), sn.bias)


def concat_convs(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One convolution whose output channels are those of ``convs`` (same input, kernel) in order."""
    return _conv2d(torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs]))


def instance_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-sample, per-channel normalisation over H, W (biased variance), statistics in float32."""
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    scale = torch.rsqrt(var.float() + eps)
    return torch.addcmul((-mean.float() * scale).to(x.dtype), x, scale.to(x.dtype))


# Per output phase p of a nearest x s upsampling, the 3 taps of a 3-wide kernel fall on low-res
# offsets -1, 0, +1 as follows: first phase "L" {-1: tap 0, 0: taps 1, 2}; inner phases "C"
# {0: taps 0, 1, 2}; last phase "R" {0: taps 0, 1, +1: tap 2}. Phases of one class share a kernel.
_TAPS = {"L": ([0], [1, 2]), "C": ([0, 1, 2],), "R": ([0, 1], [2])}
_ROWS = {"L": slice(0, -1), "C": slice(1, -1), "R": slice(1, None)}  # of the 1-padded input


def _summed_kernel(weight: torch.Tensor, row_class: str, col_class: str) -> torch.Tensor:
    """(O, I, 3, 3) -> (O, I, rows, cols): the taps of each low-res offset summed, for one phase class."""
    rows = [weight[:, :, taps].sum(dim=2) for taps in _TAPS[row_class]]  # each (O, I, 3)
    return torch.stack([torch.stack([r[:, :, taps].sum(dim=2) for taps in _TAPS[col_class]], dim=-1) for r in rows],
                       dim=-2)


class UpsampledConv(nn.Module):
    """conv3x3(nearest_upsample(x, s)) with 'same' padding, computed at the low resolution.

    One small convolution per (row class, column class) of output phases, on the zero-padded
    low-resolution input with the original taps summed per low-res offset; the results are
    interleaved into the (N, C, s H, s W) output. Exact up to float rounding.
    """

    def __init__(self, conv: nn.Conv2d, scale: int):
        super().__init__()
        if conv.kernel_size != (3, 3) or scale < 2:
            raise ValueError("UpsampledConv takes a 3x3 convolution and a scale >= 2")
        self.scale = scale
        self.classes = ["L"] + ["C"] * (scale - 2) + ["R"]
        self.kinds = sorted(set(self.classes), key="LCR".index)
        self.convs = nn.ModuleList()
        for cy in self.kinds:
            for cx in self.kinds:
                piece = _conv2d(_summed_kernel(conv.weight.detach(), cy, cx), conv.bias)
                piece.padding = (0, 0)
                self.convs.append(piece)
        self.register_buffer("phase_kind", torch.tensor([self.kinds.index(c) for c in self.classes], device=conv.weight.device),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1))
        k, s = len(self.kinds), self.scale
        pieces = [conv(padded[:, :, _ROWS[self.kinds[i // k]], _ROWS[self.kinds[i % k]]]).permute(0, 2, 3, 1)
                  for i, conv in enumerate(self.convs)]  # each (n, h, w, c)
        n, h, w, c = pieces[0].shape
        grid = torch.stack(pieces, dim=3).view(n, h, w, k, k, c)
        grid = grid.index_select(3, self.phase_kind).index_select(4, self.phase_kind)  # (n, h, w, s, s, c)
        out = grid.permute(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, c).permute(0, 3, 1, 2)  # channels-last memory
        return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()


class DepthSlicedConv3d(nn.Module):
    """A k x k x k ``Conv3d`` ('same' padding, stride 1) as one k x k ``Conv2d`` over its depth slices.

    The kernel's k depth taps are stacked on the output channels (k * O of them); output slice d is
    the sum of tap j's output at input slice d + j - k // 2 (zero outside), in float32, plus the bias.
    Exact up to float rounding. For the dense motion mask (112 -> 16 channels, 7 x 7 x 7 at 16 x 64 x 64
    / 16 x 128 x 128) cuDNN runs the 3-D form at ~110 TFLOP/s on an H100 (16 output channels fill
    little of a tensor-core tile) and this form 2.6x faster. (N, C, D, H, W) -> (N, O, D, H, W) float32.
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k, k) or conv.stride != (1, 1, 1) or conv.padding != (k // 2,) * 3 or k % 2 == 0:
            raise ValueError("DepthSlicedConv3d takes an odd cubic kernel with 'same' padding and stride 1")
        self.taps, self.out_channels = k, conv.out_channels
        weight = conv.weight.detach().permute(2, 0, 1, 3, 4).reshape(k * conv.out_channels, conv.in_channels, k, k)
        self.conv = _conv2d(weight, None)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        k, o, p = self.taps, self.out_channels, self.taps // 2
        slices = x.permute(0, 2, 1, 3, 4).reshape(n * d, c, h, w)  # a view for channels-last-3d x
        y = self.conv(slices).view(n, d, k, o, h, w).float()  # y[:, s, j]: tap j at input slice s
        y = F.pad(y, (0, 0, 0, 0, 0, 0, 0, 0, p, p))  # zero slices beyond both ends
        out = sum(y[:, j: j + d, j] for j in range(k))  # output slice t reads input slice t + j - p
        return (out + self.bias.float().view(1, 1, o, 1, 1)).permute(0, 2, 1, 3, 4)


class TapSumConv2d(nn.Module):
    """A k x k ``Conv2d`` with one output channel ('same' padding) as a 1 x 1 convolution to its k * k
    taps, summed shifted in float32, plus the bias. Exact up to float rounding. A single output
    channel leaves a tensor-core tile nearly empty: the occlusion convolution (1792 -> 1, 7 x 7) ran
    at ~8 TFLOP/s on an H100. (N, C, H, W) -> (N, 1, H, W) float32.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        k = conv.kernel_size[0]
        if conv.out_channels != 1 or conv.kernel_size != (k, k) or conv.padding != (k // 2, k // 2) or k % 2 == 0:
            raise ValueError("TapSumConv2d takes one output channel, an odd square kernel and 'same' padding")
        self.size = k
        self.conv = _conv2d(conv.weight.detach()[0].permute(1, 2, 0).reshape(k * k, -1, 1, 1), None)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, h, w = self.size, x.shape[2], x.shape[3]
        p = k // 2
        taps = F.pad(self.conv(x).float(), (p, p, p, p))  # (N, k*k, H + 2p, W + 2p); tap (i, j) = channel i*k + j
        out = sum(taps[:, i * k + j, i: i + h, j: j + w] for i in range(k) for j in range(k))
        return (out + self.bias.float()).unsqueeze(1)


class Modulation(nn.Module):
    """SPADE's affine part: normalized * (1 + gamma(a)) + beta(a), gamma and beta from one conv."""

    def __init__(self, spade: SPADE):
        super().__init__()
        self.conv = concat_convs([spade.mlp_gamma, spade.mlp_beta])
        with torch.no_grad():
            self.conv.bias[: spade.mlp_gamma.out_channels] += 1.0

    def forward(self, normalized: torch.Tensor, actv: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.conv(actv).chunk(2, dim=1)
        return torch.addcmul(beta, normalized, gamma)


class FusedSPADEBlock(nn.Module):
    """``SPADEResnetBlock`` with plain convs; takes the hidden SPADE activations [a_0, a_1, (a_s)]."""

    def __init__(self, block: SPADEResnetBlock):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        self.conv_0 = plain_conv(block.conv_0)
        self.conv_1 = plain_conv(block.conv_1)
        self.mod_0 = Modulation(block.norm_0)
        self.mod_1 = Modulation(block.norm_1)
        if self.learned_shortcut:
            self.conv_s = plain_conv(block.conv_s)
            self.mod_s = Modulation(block.norm_s)

    @staticmethod
    def norms(block: SPADEResnetBlock) -> list[SPADE]:
        """The block's SPADEs in the order ``forward`` expects their activations."""
        return [block.norm_0, block.norm_1] + ([block.norm_s] if block.learned_shortcut else [])

    def forward(self, x: torch.Tensor, actv: list[torch.Tensor]) -> torch.Tensor:
        normalized = instance_normalize(x)
        shortcut = self.conv_s(self.mod_s(normalized, actv[2])) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.mod_0(normalized, actv[0]), 0.2))
        dx = self.conv_1(F.leaky_relu(self.mod_1(instance_normalize(dx), actv[1]), 0.2))
        return shortcut + dx


class FusedSPADEDecoder(nn.Module):
    """``SPADEDecoder`` with fused SPADE convolutions (see the module docstring)."""

    def __init__(self, decoder: SPADEDecoder):
        super().__init__()
        middle = [getattr(decoder, f"G_middle_{i}") for i in range(decoder.num_middle)]
        self.hidden = decoder.up_0.norm_0.mlp_shared[0].out_channels
        self.fc = copy.deepcopy(decoder.fc)
        self.middle_shared = concat_convs([n.mlp_shared[0] for b in middle for n in FusedSPADEBlock.norms(b)])
        self.middle = nn.ModuleList(FusedSPADEBlock(b) for b in middle)
        self.ups = nn.ModuleList(FusedSPADEBlock(b) for b in (decoder.up_0, decoder.up_1))
        self.ups_shared = nn.ModuleList(
            UpsampledConv(concat_convs([n.mlp_shared[0] for n in FusedSPADEBlock.norms(b)]), scale)
            for b, scale in ((decoder.up_0, 2), (decoder.up_1, 4)))
        self.conv_img = copy.deepcopy(decoder.conv_img)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        actv = F.relu(self.middle_shared(feature)).split(self.hidden, dim=1)
        for i, block in enumerate(self.middle):
            x = block(x, actv[2 * i: 2 * i + 2])
        for block, shared in zip(self.ups, self.ups_shared):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(x, F.relu(shared(feature)).split(self.hidden, dim=1))
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class FastGenerator(nn.Module):
    """The per-frame half of the generator (dense motion, warp, decoder) with folded weights."""

    decode = OcclusionAwareSPADEGenerator.decode

    def __init__(self, generator: OcclusionAwareSPADEGenerator, dtype: torch.dtype, channels_last: bool):
        super().__init__()
        dense = copy.deepcopy(generator.dense_motion_network)
        del dense.compress, dense.norm  # the source's compressed features are computed once
        dense.mask, dense.occlusion = DepthSlicedConv3d(dense.mask), TapSumConv2d(dense.occlusion)
        self.dense_motion_network = fold_conv_norm_pairs(dense)
        self.third = fold_conv_norm_pairs(copy.deepcopy(generator.third))
        self.fourth = copy.deepcopy(generator.fourth)
        self.decoder = FusedSPADEDecoder(generator.decoder)
        self.requires_grad_(False).to(dtype)
        self.channels_last = self.dense_motion_network.channels_last = channels_last
        if channels_last:
            for p in self.parameters():
                fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(p.dim())
                if fmt is not None:
                    p.data = p.data.contiguous(memory_format=fmt)


class FrameGraph(nn.Module):
    """One batch of the fast path: driving windows -> frames, with the clip's source work cached.

    Built for source images (1, 3, S, S) float32 in [0, 1] of one size; ``set_source`` swaps in
    another image of that size in place (its buffers keep their addresses, so a compiled or
    captured graph of this module stays valid). ``set_source_semantics`` sets the source keypoints
    of a track; ``forward(windows (B, C, 27) float32, degrees (B, 3) float32 yaw/pitch/roll
    overrides, use (3,) bool which overrides apply)`` -> (B, 3, S, S) frames in (0, 1), dtype of
    the convolutions. All inputs live on the graph's device.
    """

    def __init__(self, nets, source: torch.Tensor, *, dtype: torch.dtype = torch.float32, channels_last: bool = False):
        super().__init__()
        self.kp_detector, generator = nets.kp_detector, nets.generator
        self.encode_source, self.compress = generator.encode_source, generator.dense_motion_network.compress_features
        self.mapping = nets.mapping
        kp_canonical, volume, compressed = self._source_work(source)
        self.register_buffer("kp_canonical", kp_canonical)
        self.register_buffer("kp_source", torch.zeros_like(kp_canonical))
        self.register_buffer("volume", volume)
        self.register_buffer("compressed", compressed)
        with torch.no_grad():
            self.generator = FastGenerator(generator, dtype, channels_last)

    @torch.no_grad()
    def _source_work(self, source: torch.Tensor):
        """(canonical keypoints, 3-D feature volume, its compressed copy) of a (1, 3, S, S) source.

        Once per clip, with cuDNN's heuristics rather than its benchmark: the benchmark's results are
        cached per thread and each render runs in a new thread, so it would search again every clip
        (a search tries large workspaces and takes time before the first frame)."""
        with torch.backends.cudnn.flags(enabled=True, benchmark=False):
            volume = self.encode_source(source)
            return self.kp_detector(source), volume, self.compress(volume)

    @torch.no_grad()
    def set_source(self, source: torch.Tensor) -> None:
        """Render another (1, 3, S, S) source image of the same size from now on (buffers updated in place)."""
        for buffer, value in zip((self.kp_canonical, self.volume, self.compressed), self._source_work(source)):
            buffer.copy_(value)

    @torch.no_grad()
    def set_source_semantics(self, source_semantics: torch.Tensor) -> None:
        """(1, C, 27) source window -> the source keypoints used by every following batch."""
        self.kp_source.copy_(transform_keypoints(self.kp_canonical, self.mapping(source_semantics)))

    def forward(self, windows: torch.Tensor, degrees: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        n = windows.shape[0]
        motion = self.mapping(windows)
        degrees = torch.where(use, degrees, bins_to_pose(motion))
        kp_driving = posed_keypoints(self.kp_canonical.expand(n, -1, -1), degrees, motion["t"], motion["exp"])
        kp_source = self.kp_source.expand(n, -1, -1)
        motion = self.generator.dense_motion_network.motion(self.compressed.expand(n, -1, -1, -1, -1), kp_source, kp_driving)
        return self.generator.decode(self.volume.expand(n, -1, -1, -1, -1), motion)


class FastStep:
    """The fast path's batch step for one set of networks, frame size and batch size, reusable
    from one clip to the next (the slow part of a first render: folding weights, compiling,
    capturing the CUDA graph, is done once per process; see ``talker.model_cache``).

    nets: ``RendererNets`` on ``device``; size: S (pixels); batch_size: B; dtype: the convolutions'
    dtype; compile: None or a ``torch.compile`` mode; cuda_graph: replay a captured CUDA graph.
    ``lock`` is held by the render using the step (a step renders one clip at a time).
    """

    def __init__(self, nets, size: int, batch_size: int, *, device, dtype: torch.dtype = torch.float32,
                 channels_last: bool = True, compile: str | None = None, cuda_graph: bool = False):
        import threading

        self.device, self.size, self.batch_size = torch.device(device), size, batch_size
        self.channels = nets.mapping.coeff_nc
        self.graph = FrameGraph(nets, torch.zeros(1, 3, size, size, device=self.device), dtype=dtype,
                                channels_last=channels_last)
        self.compiled = self.graph if compile is None else torch.compile(self.graph, mode=compile, dynamic=False)
        self.call = CudaGraphStep(self.compiled) if cuda_graph else self.compiled
        self.lock = threading.Lock()

    @property
    def reuses_output(self) -> bool:
        """True when each call returns the same output buffer (compiled or captured steps)."""
        return self.call is not self.graph

    def warm_up(self) -> None:
        """Run one batch of zeros through the (compiled) graph: compiles now rather than in the first
        real batch. The CUDA graph is captured at the first real batch, by the thread that renders:
        a capture while other threads use the GPU (the pipeline warms up during the motion stage)
        can fail with 'operation not permitted when stream is capturing'."""
        b = self.batch_size
        with torch.no_grad():
            self.compiled(torch.zeros(b, self.channels, 27, device=self.device), torch.zeros(b, 3, device=self.device),
                          torch.zeros(3, dtype=torch.bool, device=self.device))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, windows: torch.Tensor, degrees: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        return self.call(windows, degrees, use)


class CudaGraphStep:
    """Replays a captured CUDA graph of ``fn`` for fixed-shape inputs.

    The first call warms ``fn`` up on a side stream (cuDNN autotuning, compilation), then captures
    it. Each call copies the inputs into static buffers, replays, and returns the static output:
    valid until the next call (copy or consume it first; work queued on the current stream after
    the call is ordered after the replay).
    """

    def __init__(self, fn, warmup: int = 3):
        self.fn = fn
        self.warmup = warmup
        self.graph = None
        self.inputs: tuple[torch.Tensor, ...] = ()
        self.output = None

    def __call__(self, *inputs: torch.Tensor):
        if self.graph is None:
            self._capture(inputs)
        for static, value in zip(self.inputs, inputs):
            static.copy_(value, non_blocking=True)
        self.graph.replay()
        return self.output

    def _capture(self, inputs) -> None:
        self.inputs = tuple(x.clone() for x in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup):
                self.fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: other threads may still call into CUDA (the pipeline's main thread waits for this batch)
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"), torch.no_grad():
            self.output = self.fn(*self.inputs)
