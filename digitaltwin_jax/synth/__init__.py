"""Synthetic face-image engine (paper section 3.2)."""
