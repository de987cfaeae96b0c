"""img2txt: one-sentence descriptions of photos, at scale (Show and Tell)."""

__version__ = '0.1.0'
