"""``RendererNets``: the three inference networks of the SadTalker renderer, loaded strictly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from renderer.sadtalker.generator import OcclusionAwareSPADEGenerator
from renderer.sadtalker.kp_detector import KPDetector
from renderer.sadtalker.mapping import MappingNet


def _load(module: torch.nn.Module, state: Mapping[str, torch.Tensor], device) -> torch.nn.Module:
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    module.load_state_dict(state, strict=True)
    return module.requires_grad_(False).eval().to(device)


@dataclass
class RendererNets:
    """KPDetector, OcclusionAwareSPADEGenerator and one MappingNet, in eval mode, float32, on one device.

    The MappingNet has 70 input channels (file ``mapping_00229``, crop / extcrop / resize) or 73
    (``mapping_00109``, full / extfull); ``full`` tells which.
    """

    kp_detector: KPDetector
    generator: OcclusionAwareSPADEGenerator
    mapping: MappingNet

    @classmethod
    def from_state_dicts(cls, kp: Mapping, gen: Mapping, mapping: Mapping, device="cpu") -> "RendererNets":
        """Build from state dicts with the official keys (tensors or numpy arrays; strict load).

        The MappingNet's channel count comes from ``mapping['first.0.weight']`` (70 or 73).
        """
        coeff_nc = int(torch.as_tensor(mapping["first.0.weight"]).shape[1])
        return cls(
            kp_detector=_load(KPDetector(), kp, device),
            generator=_load(OcclusionAwareSPADEGenerator(), gen, device),
            mapping=_load(MappingNet(coeff_nc), mapping, device),
        )

    @classmethod
    def from_files(cls, files, *, full: bool, device="cpu") -> "RendererNets":
        """Load from a ``talker.models.sadtalker_files.SadTalkerFiles`` set (the MappingNet of ``full``)."""
        from talker.models.sadtalker_files import load_network_state

        return cls.from_state_dicts(
            load_network_state(files, "kp_extractor"),
            load_network_state(files, "generator"),
            load_network_state(files, "mapping_full" if full else "mapping_crop"),
            device,
        )

    @property
    def full(self) -> bool:
        """True when the MappingNet takes 73 channels (full / extfull modes)."""
        return self.mapping.coeff_nc == 73

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device
