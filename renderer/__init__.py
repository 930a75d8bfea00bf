"""Renderers: FaceCrop + CoeffTrack -> frames, (B, S, S, 3) uint8 RGB batches.

``renderer.embedded`` warps the portrait with a landmark mesh (no model files). Import the backend
you need; this package imports nothing heavy.
"""
