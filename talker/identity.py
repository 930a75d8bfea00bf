"""Face identity embeddings for `talker score` (optional extra ``talker[identity]``).

dlib's ResNet face-recognition model (128-d embeddings; two photos of one person are usually closer
than 0.6) and its 5-point shape predictor, both CC0 1.0 (dlib-models), shipped by the PyPI package
``face_recognition_models``; dlib itself from the ``dlib-bin`` wheel (Boost licence). The model
files are located without importing ``face_recognition_models`` (its ``__init__`` needs
``pkg_resources``, gone from recent setuptools). Faces are found with talker's own detector.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from talker.errors import MissingDependencyError

_INSTALL = 'pip install "talker[identity]"  (dlib-bin and face_recognition_models)'


@functools.lru_cache(maxsize=1)
def _models():
    """(shape predictor, recognition model), loaded once per process."""
    spec = importlib.util.find_spec("face_recognition_models")
    try:
        import dlib
    except ImportError:
        dlib = None
    if dlib is None or spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the identity check needs dlib and its face models: {_INSTALL}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return (
        dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def identity_available() -> bool:
    """True when the optional identity models can be loaded."""
    try:
        _models()
    except MissingDependencyError:
        return False
    return True


def face_embedding(rgb: np.ndarray) -> np.ndarray | None:
    """(128,) float64 embedding of the largest face in an (H, W, 3) uint8 RGB picture; None without a face."""
    import dlib

    from talker.face import detect_faces

    predictor, recogniser = _models()
    faces = detect_faces(rgb)
    if not faces:
        return None
    x0, y0, x1, y1 = faces[0].box
    shape = predictor(np.ascontiguousarray(rgb), dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
    return np.asarray(recogniser.compute_face_descriptor(np.ascontiguousarray(rgb), shape, 1), np.float64)
