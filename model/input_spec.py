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
# How a photo becomes the encoder's square: 'crop' resizes the short side to
# ``resize`` and keeps the centre square (the ImageNet convention); 'squash'
# resizes the whole photo to the square, aspect not kept (what a data set of
# photos stretched to squares, such as the shared Flickr8k copy, was made with).
CROP, SQUASH = 'crop', 'squash'
RESIZE_MODES = (CROP, SQUASH)

# Refuse images declaring more pixels than this (width × height from the header).
# 100 megapixels is well above any camera photo and bounds a decode's memory at
# a few hundred MB. The Pillow decoder cannot go above twice Pillow's
# ``Image.MAX_IMAGE_PIXELS`` (about 179 megapixels by default): raise that too
# if you need more.
DEFAULT_MAX_PIXELS = 100_000_000


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Resize the short side to ``resize``, then centre-crop ``size`` × ``size`` (or squash: the whole image to it)."""

    # Side of the square RGB crop the encoder consumes.
    size: int
    # Short side of the image after resizing, before the centre crop.
    resize: int
    # Resampling filter for the resize.
    resample: str = 'bicubic'
    # One of RESIZE_MODES; 'squash' ignores ``resize``.
    resize_mode: str = CROP

    def __post_init__(self):
        if not 0 < self.size <= self.resize:
            raise ValueError(f'need 0 < size <= resize, got size={self.size} resize={self.resize}')
        if self.resample not in RESAMPLING:
            raise ValueError(f'resample must be one of {RESAMPLING}, got {self.resample!r}')
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f'resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}')

    def draft_size(self, width, height):
        """The smallest (width, height) a ``width`` × ``height`` image may be decoded at and still resize as asked.

        JPEG decoders scale down in the DCT domain (by 1/2, 1/4 or 1/8) to at
        least this size; None when the image is no larger than needed.
        """
        short = min(width, height)
        if self.resize_mode == SQUASH:
            return (self.size, self.size) if short > self.size else None
        if short <= self.resize:
            return None
        return -(-width * self.resize // short), -(-height * self.resize // short)
