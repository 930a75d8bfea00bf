"""Enhancement of rendered frames: face restoration and paste-back into the output picture.

``enhance.paste.PasteBack`` turns S x S renderer frames into output-sized frames (numpy on the CPU,
tensors on the GPU); ``enhance.restore.FaceRestorer`` restores the faces in them.
"""
