"""Audio + FaceCrop -> CoeffTrack in the 'sadtalker' space (SPEC §4-§9).

    1. source coefficients: 68 landmarks -> 224 alignment -> ResNet-50 -> (73,)
    2. mel windows of the audio, one (80, 16) window per 25-fps frame
    3. blink ratio (seeded) or the reference video's expressions
    4. Audio2Exp -> expression (T, 64)
    5. Audio2Pose with seeded noise -> pose (T, 6), Savitzky-Golay smoothed
    6. reference-video head motion, expression scale, still mode -> (T, 70)

The track's values are final: ``expression_scale`` and ``still`` are already applied (recorded in
``meta``), so the renderer must not apply them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audio2coeff.sadtalker.align import align_face
from audio2coeff.sadtalker.audio2exp import Audio2Exp, predict_expression
from audio2coeff.sadtalker.audio2pose import Audio2Pose, draw_noise, num_chunks, predict_motion, smooth_pose
from audio2coeff.sadtalker.blink import blink_ratio
from audio2coeff.sadtalker.mel import PADDINGS, audio_windows
from audio2coeff.sadtalker.recon import ReconNet, coeffs73, recon_coeffs
from audio2coeff.sadtalker.reference import looped, reference_coeffs
from talker.errors import OptionError
from talker.models.schema import check_state_dict
from talker.types import Audio, CoeffTrack, FaceCrop

NUM_POSE_STYLES = 46
EXP = slice(0, 64)
POSE = slice(64, 70)


@dataclass
class SadTalkerAudioNets:
    """The three networks of the audio stage, in eval mode on one device and dtype."""

    recon: ReconNet
    audio2exp: Audio2Exp
    audio2pose: Audio2Pose

    @classmethod
    def from_state_dicts(
        cls,
        recon: dict,
        audio2exp: dict,
        audio2pose: dict,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "SadTalkerAudioNets":
        """Build from state dicts keyed as the schema networks face_3drecon, audio2exp, audio2pose.

        Each is checked against the schema first (CheckpointError on a mismatch).
        """
        for name, state in (("face_3drecon", recon), ("audio2exp", audio2exp), ("audio2pose", audio2pose)):
            check_state_dict(name, state, f"the {name} state dict")
        nets = cls(ReconNet(), Audio2Exp(), Audio2Pose())
        nets.recon.load_state_dict(recon)
        nets.audio2exp.load_state_dict(audio2exp)
        nets.audio2pose.load_checkpoint_state(audio2pose)
        for net in (nets.recon, nets.audio2exp, nets.audio2pose):
            net.to(device=device, dtype=dtype).eval()
        return nets

    @classmethod
    def from_files(
        cls, files, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> "SadTalkerAudioNets":
        """Load from a ``talker.models.sadtalker_files.SadTalkerFiles``."""
        from talker.models.sadtalker_files import load_network_state

        return cls.from_state_dicts(
            load_network_state(files, "face_3drecon"),
            load_network_state(files, "audio2exp"),
            load_network_state(files, "audio2pose"),
            device,
            dtype,
        )


def source_coeffs(face: FaceCrop, nets: SadTalkerAudioNets, lm68: np.ndarray | None = None) -> np.ndarray:
    """(73,) float32 coefficients of the face crop: exp 64, angle 3, trans 3, crop params 3.

    lm68: (68, 2) iBUG landmarks in ``face.image`` pixels; by default derived from ``face.landmarks``.
    """
    if lm68 is None:
        from talker.face import landmarks68

        lm68 = landmarks68(face.landmarks)
    aligned = align_face(face.image, lm68)
    return coeffs73(recon_coeffs(nets.recon, aligned.image[None])[0], aligned.trans_params)


def sadtalker_track(
    face: FaceCrop,
    audio: Audio,
    nets: SadTalkerAudioNets,
    *,
    pose_style: int = 0,
    still: bool = False,
    expression_scale: float = 1.0,
    seed: int = 0,
    ref_eyeblink: Path | None = None,
    ref_pose: Path | None = None,
    padding: str = "zero",
    blink: bool = True,
    pose_noise: np.ndarray | None = None,
    source: np.ndarray | None = None,
) -> CoeffTrack:
    """Expression and head pose per video frame for ``audio`` spoken by ``face``.

    pose_style: Audio2Pose class 0..45. still: keep the source pose in every frame.
    expression_scale: multiplies the 64 expression coefficients. seed: seeds the blink schedule
    (numpy) and the pose noise (torch.Generator). ref_eyeblink: video whose expressions replace the
    source's as Audio2Exp reference (no generated blinks). ref_pose: video whose head motion relative
    to its first frame is added to the pose. padding: STFT padding, 'zero' or 'reflect' (SPEC §5).
    blink: False gives no generated blinks. pose_noise: (ceil((T-1)/32), 64) noise to use instead of
    the seeded draw. source: (73,) source coefficients when already known (skips the recon net).
    Returns values (T, 70) float32 with T = audio.num_frames, space 'sadtalker', source (73,).
    """
    # 1. Check inputs.
    if not 0 <= pose_style < NUM_POSE_STYLES:
        raise OptionError(f"--pose-style must be between 0 and {NUM_POSE_STYLES - 1}, not {pose_style}")
    if padding not in PADDINGS:
        raise OptionError(f"mel padding must be one of {', '.join(PADDINGS)}, not {padding!r}")
    T = audio.num_frames

    # 2. Source coefficients and mel windows.
    if source is None:
        source = source_coeffs(face, nets)
    source = np.asarray(source, dtype=np.float32)
    windows = torch.from_numpy(audio_windows(audio.samples, T, padding))

    # 3. Expression reference and blink ratio.
    if ref_eyeblink is not None:
        ref_exp = looped(reference_coeffs(ref_eyeblink, nets)[:, EXP], T)
        ratio = np.zeros((T, 1), dtype=np.float32)
    else:
        ref_exp = np.repeat(source[None, EXP], T, axis=0)
        ratio = blink_ratio(T, np.random.default_rng(seed)) if blink else np.zeros((T, 1), dtype=np.float32)

    # 4. Expression.
    exp = predict_expression(nets.audio2exp, windows, torch.from_numpy(ref_exp), torch.from_numpy(ratio))
    exp = exp.float().cpu().numpy()

    # 5. Head pose.
    pose0 = source[POSE]
    noise = torch.as_tensor(pose_noise, dtype=torch.float32) if pose_noise is not None else draw_noise(T, seed)
    if noise.numel() != num_chunks(T) * 64:
        raise ValueError(f"pose_noise needs {num_chunks(T)} rows of 64 for {T} frames, got {tuple(noise.shape)}")
    motion = predict_motion(nets.audio2pose, windows, torch.from_numpy(pose0), pose_style, noise)
    pose = smooth_pose(pose0[None] + motion.float().cpu().numpy())

    # 6. Reference head motion, expression scale, still.
    if ref_pose is not None:
        ref = reference_coeffs(ref_pose, nets)[:, POSE]
        pose = pose + looped(ref, T) - ref[0]
    if still:
        pose = np.repeat(pose0[None], T, axis=0)
    values = np.concatenate([exp * np.float32(expression_scale), pose], axis=1).astype(np.float32)
    meta = {
        "backend": "sadtalker",
        "seed": int(seed),
        "pose_style": int(pose_style),
        "still": bool(still),
        "expression_scale": float(expression_scale),
        "blink": bool(blink and ref_eyeblink is None),
        "ref_eyeblink": str(ref_eyeblink) if ref_eyeblink is not None else None,
        "ref_pose": str(ref_pose) if ref_pose is not None else None,
        "mel_padding": padding,
        "pose_noise": "given" if pose_noise is not None else "seeded",
    }
    return CoeffTrack(values=values, space="sadtalker", source=source, meta=meta)
