"""SadTalker's audio networks: Audio + FaceCrop -> CoeffTrack in the 'sadtalker' space.

    mel.py        16 kHz waveform -> log-mel -> (T, 80, 16) windows (NumPy)
    align.py      68 landmarks -> 5-point fit -> 224 x 224 recon input
    recon.py      Deep3DFaceRecon ResNet-50 -> 257 -> the 73 source coefficients
    audio2exp.py  Audio2Exp: windows + reference + blink ratio -> expression (T, 64)
    audio2pose.py Audio2Pose CVAE decoder -> head pose (T, 6)
    blink.py      seeded blink schedule;  reference.py  reference-video coefficients
    track.py      SadTalkerAudioNets, source_coeffs, sadtalker_track

torch is imported when a name from track.py is first used, not with this package.
"""

_LAZY = ("SadTalkerAudioNets", "sadtalker_track", "source_coeffs")
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        from audio2coeff.sadtalker import track

        return getattr(track, name)
    raise AttributeError(f"module 'audio2coeff.sadtalker' has no attribute {name!r}")
