"""The face stage: portrait RGB array -> ``talker.types.FaceCrop``.

    detect_faces(rgb)            -> [FaceBox], largest first          (detect.py, BlazeFace in torch)
    face_landmarks(rgb, box)     -> (478, 3) mesh points, picture px   (detect.py, face mesh in torch)
    face_landmarks_batch(frames, box) -> the same for many frames, one batch
    landmarks68(lm478)           -> (68, 2) iBUG points                (landmarks68.py)
    crop_geometry(lm68, W, H)    -> CropGeometry, SadTalker's crop     (geometry.py, NumPy)
    prepare_face(rgb, mode, ...) -> FaceCrop                           (prepare.py)

The networks (mediapipe 0.10.21's, converted to torch: blazeface.py, facemesh.py, graph.py) load
on first use, not with this package.
"""

from talker.face.detect import FaceBox, detect_faces, face_landmarks, face_landmarks_batch
from talker.face.geometry import CropGeometry, crop_geometry
from talker.face.landmarks68 import IBUG68_FROM_MESH, landmarks68
from talker.face.prepare import MIN_FACE_SIDE, choose_face, cut, face_region, prepare_face, to_crop_pixels

__all__ = [
    "IBUG68_FROM_MESH",
    "MIN_FACE_SIDE",
    "CropGeometry",
    "FaceBox",
    "choose_face",
    "crop_geometry",
    "cut",
    "detect_faces",
    "face_landmarks",
    "face_landmarks_batch",
    "face_region",
    "landmarks68",
    "prepare_face",
    "to_crop_pixels",
]
