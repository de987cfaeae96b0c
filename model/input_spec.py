"""What an encoder expects as input pixels, and the pixel limit, shared by every image decoder.

The Beam pipelines decode with Pillow and the exported captioner decodes
in-graph with TensorFlow; both read this spec so that the captioner sees the
same crop the encoder was trained on, and both refuse the same images as too
large. The pixel scaling (e.g. ``(x - 127) /
128``) is not here: it is the first layer of each encoder model, so encoders
take plain RGB values in [0, 255].
"""
import dataclasses

RESAMPLING = ('bicubic', 'bilinear')

# Refuse images declaring more pixels than this (width × height from the header).
# 100 megapixels is well above any camera photo and bounds a decode's memory at
# a few hundred MB. The Pillow decoder cannot go above twice Pillow's
# ``Image.MAX_IMAGE_PIXELS`` (about 179 megapixels by default): raise that too
# if you need more.
DEFAULT_MAX_PIXELS = 100_000_000


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Resize the short side to ``resize``, then centre-crop ``size`` × ``size``."""

    # Side of the square RGB crop the encoder consumes.
    size: int
    # Short side of the image after resizing, before the centre crop.
    resize: int
    # Resampling filter for the resize.
    resample: str = 'bicubic'

    def __post_init__(self):
        if not 0 < self.size <= self.resize:
            raise ValueError(f'need 0 < size <= resize, got size={self.size} resize={self.resize}')
        if self.resample not in RESAMPLING:
            raise ValueError(f'resample must be one of {RESAMPLING}, got {self.resample!r}')
