"""The embedded renderer: a mesh warp of the portrait driven by EMBEDDED_CHANNELS (no model files).

    from renderer.embedded import EmbeddedRenderer
    for batch in EmbeddedRenderer(face).render(track): ...   # (B, S, S, 3) uint8 RGB
"""

from renderer.embedded.render import EmbeddedRenderer

__all__ = ["EmbeddedRenderer"]
