"""SadTalker's audio networks: Audio + FaceCrop -> CoeffTrack in the 'sadtalker' space."""
