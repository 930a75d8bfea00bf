"""Coefficients of a reference video, for ``ref_eyeblink`` and ``ref_pose`` (SPEC §3, §6-§8).

As SadTalker does: every frame is cut with the crop box of the first frame ('crop' mode) and
resized to 256 x 256 (whatever the render size), its landmarks are found again on that crop,
aligned to 224 and regressed to 73 coefficients. The video's frame rate is ignored (frames are
taken as 25 fps). A frame where no face is found reuses the previous frame's landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE_SIZE = 256
RECON_BATCH = 16


def _crop_landmarks68(frame: np.ndarray) -> np.ndarray | None:
    """(68, 2) landmarks of the largest face in a crop, or None when there is none."""
    from talker.face import detect_faces, face_landmarks, landmarks68
    from talker.errors import NoFaceError

    faces = detect_faces(frame)
    if not faces:
        return None
    try:
        return landmarks68(face_landmarks(frame, faces[0]))
    except NoFaceError:
        return None


def _recon73(nets, aligned: list) -> list[np.ndarray]:
    """(73,) coefficients of each ``AlignedFace`` in ``aligned``, run as one batch."""
    from audio2coeff.sadtalker.recon import coeffs73, recon_coeffs

    coeffs = recon_coeffs(nets.recon, np.stack([a.image for a in aligned]))
    return [coeffs73(c, a.trans_params) for c, a in zip(coeffs, aligned)]


def _frames(video: Path, name: str):
    """The video's frames (RGB uint8); InputImageError when ffmpeg cannot decode it."""
    from talker.errors import InputImageError
    from talker.media import read_video_frames

    try:
        yield from read_video_frames(video)
    except (RuntimeError, OSError) as err:
        raise InputImageError(f"cannot read {name}: {str(err).strip().splitlines()[0]}") from err


def reference_coeffs(video: Path | str, nets) -> np.ndarray:
    """(N, 73) float32 coefficients (exp 64, angle 3, trans 3, crop 3) of every frame of ``video``.

    nets: a ``SadTalkerAudioNets`` (its recon network is used).
    Raises InputImageError when the video cannot be read, NoFaceError when its first frame has no face.
    """
    from talker.errors import InputImageError, NoFaceError
    from talker.face import choose_face, cut, detect_faces, face_landmarks, face_region
    from audio2coeff.sadtalker.align import align_face

    video = Path(video)
    name = f"the reference video {video.name}"
    if not video.is_file():
        raise InputImageError(f"{name} does not exist ({video}); check the path")
    box, lm68, pending, out = None, None, [], []
    for frame in _frames(video, name):
        if box is None:
            face = choose_face(detect_faces(frame), None, name)
            box = face_region(face_landmarks(frame, face), "crop", frame.shape[1], frame.shape[0])
        crop = cut(frame, box, REFERENCE_SIZE)
        found = _crop_landmarks68(crop)
        if found is not None:
            lm68 = found
        elif lm68 is None:
            raise NoFaceError(
                f"no face found in the first frame of {name}; use a video whose face is visible from the start"
            )
        pending.append(align_face(crop, lm68))
        if len(pending) == RECON_BATCH:
            out += _recon73(nets, pending)
            pending = []
    if pending:
        out += _recon73(nets, pending)
    if not out:
        raise InputImageError(f"{name} has no video frames")
    return np.stack(out).astype(np.float32)


def looped(coeffs: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, C) rows ``coeffs[t mod N]``: a reference shorter than the clip is repeated."""
    return coeffs[np.arange(num_frames) % len(coeffs)]
