"""talker: a portrait and a voice in, a lip-synced spokesperson video out.

The stages of ``talker.pipeline`` can be called one by one; ``talker.pipeline.make`` runs them all.
"""

__version__ = "0.1.0"
