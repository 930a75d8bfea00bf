"""Audio -> CoeffTrack: per-frame motion coefficients from speech (see DESIGN.md's data flow)."""
