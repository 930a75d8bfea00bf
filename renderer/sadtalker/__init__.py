"""SadTalker's face renderer (face-vid2vid style), reimplemented from ``shared/spec/sadtalker/SPEC.md``.

Networks (one per module, state-dict keys exactly as the official checkpoints):

* ``mapping.MappingNet``              27-frame coefficient window -> head pose bins, translation, keypoint deltas
* ``kp_detector.KPDetector``          source image -> 15 canonical 3-D keypoints
* ``generator.OcclusionAwareSPADEGenerator`` (with ``dense_motion`` and ``spade``) -> rendered frame
* ``he_estimator.HEEstimator``        unused by inference; kept for checkpoint parity

Glue: ``blocks`` (shared conv blocks), ``keypoints`` (pose maths), ``semantics`` (renderer inputs
from coefficients), ``nets`` (``RendererNets``: the three inference networks), ``fast`` (the fast
inference graph: folded/fused weights, half precision, CUDA graphs), ``render``
(``SadTalkerRenderer``: FaceCrop + CoeffTrack -> streamed frame batches).

Nothing heavy is imported here; import the submodules you need.
"""
