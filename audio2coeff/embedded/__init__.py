"""The embedded backend's audio2coeff: phones or energy -> visemes -> articulation, plus blinks and head motion.

Needs only what wheels ship (pocketsphinx with its en-us model, numpy, scipy); pocketsphinx is imported
when phones are first needed.
"""

from audio2coeff.embedded.activity import detect_speech, is_speech
from audio2coeff.embedded.track import embedded_track

__all__ = ["embedded_track", "detect_speech", "is_speech"]
