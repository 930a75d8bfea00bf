"""Enhancement of rendered frames: face restoration and paste-back into the output picture.

``enhance.paste.to_output_frames`` turns S x S renderer frames into output-sized frames.
"""
