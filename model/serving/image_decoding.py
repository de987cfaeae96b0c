"""Image bytes → the encoder's input pixels, with Pillow: the one decoder every job and pipeline uses.

``decode`` turns the bytes of a JPEG, PNG, GIF, WebP, BMP or TIFF file (the
format is sniffed from the bytes, never from the file name) into a
``uint8 [size, size, 3]`` RGB array cropped as the encoder's ``InputSpec``
asks: short side resized to ``spec.resize``, centre crop ``spec.size``; or,
with ``resize_mode`` 'squash', the whole image resized to the square.
Pixel scaling is the encoder model's first layer, not the decoder's job.

What it normalises, so that a photo collection's oddities do not reach the
model: EXIF orientation is applied; greyscale, palette, CMYK and 16-bit images
become 8-bit RGB; transparency is composited on white (transparent logos and
cut-outs are drawn on white far more often than on black); an animated image
gives its first frame.

Speed: photo collections are mostly multi-megapixel JPEGs, so JPEGs are first
scaled down in the DCT domain (Pillow's draft mode, 1/2 to 1/8) to the
smallest size that still covers ``spec.resize``; a 12-megapixel photo then
decodes about 10× faster than a full decode, and the resize that follows only
ever reads the crop window.

Failure: every bad input raises a subclass of ``ImageDecodeError`` with a
one-line reason; decompression bombs are refused from the header, before any
pixel is allocated. ``pipelines.decode_images.DecodeImages`` wraps this for
Beam, turning failures into error records instead of failed bundles.

The same steps in TensorFlow ops, inside an exported captioner, are
``graph_decoding``; ``tests/model/test_graph_decoding.py`` holds the two
to the same pixels.
"""
import io
import typing
import warnings

import numpy as np
from PIL import Image, ImageOps

from img2txt.model.serving import image_header
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS, SQUASH

# The formats accepted, as ``model.serving.image_header`` names them.
SUPPORTED_FORMATS = frozenset(image_header.FORMATS)

_RESAMPLE = {'bicubic': Image.Resampling.BICUBIC, 'bilinear': Image.Resampling.BILINEAR}


class ImageDecodeError(ValueError):
    """An input that is not a usable image; the message says why in one line."""


class EmptyImageError(ImageDecodeError):
    """The input has no bytes."""


class NotAnImageError(ImageDecodeError):
    """The bytes are not in any image format Pillow recognises."""


class UnsupportedFormatError(ImageDecodeError):
    """A recognised image format that img2txt does not accept."""


class CorruptImageError(ImageDecodeError):
    """The header parsed but the pixel data is truncated or corrupt."""


class ImageTooLargeError(ImageDecodeError):
    """The header declares more pixels than the configured limit (a decompression bomb)."""


class DecodedImage(typing.NamedTuple):
    """One decoded image: the encoder's input crop and what the file said about itself."""

    # uint8 [spec.size, spec.size, 3]
    pixels: np.ndarray
    # The image as shown, after EXIF orientation.
    width: int
    height: int
    # Hex SHA-256 of the file's bytes ('' when not computed).
    sha256: str = ''


def decode(data, spec, max_pixels=DEFAULT_MAX_PIXELS, draft=True):
    """Decodes image bytes into the encoder's input crop: ``decode_image(...).pixels``."""
    return decode_image(data, spec, max_pixels, draft).pixels


def decode_image(data, spec, max_pixels=DEFAULT_MAX_PIXELS, draft=True):
    """Decodes image bytes into the encoder's input crop and the image's size.

    Args:
      data: the file's bytes.
      spec: the encoder's ``InputSpec``.
      max_pixels: refuse images whose header declares more pixels than this.
      draft: let JPEGs scale down in the DCT domain first (much faster; off
        only to measure or to compare with a full-resolution decode).

    Returns:
      A ``DecodedImage`` whose pixels are a C-contiguous ``np.uint8`` array of
      shape ``[spec.size, spec.size, 3]`` (its sha256 is left empty).

    Raises:
      ImageDecodeError: a subclass naming why the bytes are not a usable image.
    """
    if not data:
        raise EmptyImageError('empty file (0 bytes)')
    image = _open(data, max_pixels)
    # The file's own size: draft mode may decode it smaller.
    width, height = image.size
    try:
        if draft:
            _draft(image, spec)
        image.load()
        transposed = ImageOps.exif_transpose(image)
        if transposed.size != image.size:
            width, height = height, width
        image = _to_rgb(transposed)
    except ImageDecodeError:
        raise
    except MemoryError as e:
        raise ImageTooLargeError(f'out of memory decoding a {image.width}x{image.height} image') from e
    except Exception as e:  # Pillow and its codecs raise many unrelated types for bad data.
        raise CorruptImageError(f'corrupt or truncated {image.format} data: {e}') from e
    return DecodedImage(_resize_and_crop(image, spec), width, height)


def _open(data, max_pixels):
    """Parses the header only: format, size and mode, no pixel data.

    The format and size come from ``model.serving.image_header``, which decides on
    bombs before Pillow reads anything, so the verdict does not depend on
    Pillow's release. Pillow then opens the bytes as that format only.
    """
    try:
        header = image_header.read(data)
    except image_header.HeaderError as e:
        raise CorruptImageError(f'unreadable image header: {e}') from e
    if header is None:
        raise _not_accepted(data)
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f'{header.width}x{header.height} = {pixels} pixels exceeds the limit of {max_pixels} '
            '(possible decompression bomb)')
    if pixels == 0:
        raise CorruptImageError(f'{header.format} header declares an empty {header.width}x{header.height} image')
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit; ours has decided.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS[header.format])
    except Image.DecompressionBombError as e:
        # Only when max_pixels is above twice Pillow's Image.MAX_IMAGE_PIXELS.
        raise ImageTooLargeError(f'decompression bomb refused: {e}') from e
    except Exception as e:
        raise CorruptImageError(f'unreadable {header.format} header: {type(e).__name__}: {e}') from e
    return image


# Pillow's plugins for each format ``model.serving.image_header`` reads. MPO is the
# multi-picture JPEG many phone cameras write; its first picture is an
# ordinary JPEG.
_PILLOW_FORMATS = {image_header.JPEG: ('JPEG', 'MPO'), image_header.PNG: ('PNG',), image_header.GIF: ('GIF',),
                   image_header.BMP: ('BMP',), image_header.WEBP: ('WEBP',), image_header.TIFF: ('TIFF',)}


def _not_accepted(data):
    """The error for bytes of no accepted format: unsupported when they are an image of another kind."""
    supported = ', '.join(sorted(SUPPORTED_FORMATS))
    known = _unsupported_kind(data)
    if known:
        return UnsupportedFormatError(f'{known} images are not supported; supported: {supported}')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            known = Image.open(io.BytesIO(data)).format
    except Image.DecompressionBombError:  # Pillow knows the format and finds it too large to open.
        known = 'of another kind'
    except Exception:  # Pillow cannot identify it either.
        return NotAnImageError(f'not an image: no known image format matches the first bytes {data[:8]!r}')
    return UnsupportedFormatError(f'unsupported image format {known}; supported: {supported}')


# ISO base media brands of HEIF/AVIF files (iPhone photos are HEIC): Pillow
# has no decoder for them, but they are images, so they deserve a better
# reason than "not an image".
_HEIF_BRANDS = {b'heic': 'HEIC', b'heix': 'HEIC', b'hevc': 'HEIC', b'heim': 'HEIC', b'heis': 'HEIC',
                b'mif1': 'HEIF', b'msf1': 'HEIF', b'avif': 'AVIF', b'avis': 'AVIF'}


def _unsupported_kind(data):
    """The name of a known image format Pillow cannot read (HEIC, AVIF, SVG), or None."""
    if data[4:8] == b'ftyp' and data[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[data[8:12]]
    head = data[:1024].lstrip(b'\xef\xbb\xbf \t\r\n').lower()
    if head.startswith(b'<svg') or (head.startswith(b'<?xml') and b'<svg' in head):
        return 'SVG (vector)'
    return None


def _draft(image, spec):
    """Asks the JPEG decoder to scale down in the DCT domain, to no less than ``spec.draft_size``."""
    wanted = spec.draft_size(*image.size) if image.format in ('JPEG', 'MPO') else None
    if wanted:
        image.draft(image.mode, wanted)


def _to_rgb(image):
    """Any Pillow mode → 8-bit RGB, compositing transparency on white."""
    if image.mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I'):
        # 16-bit greyscale: Pillow's own conversion clips at 255 instead of scaling.
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((wide >> 8).clip(0, 255).astype(np.uint8), 'L')
    elif image.mode == 'F':
        image = Image.fromarray(np.asarray(image).clip(0, 255).astype(np.uint8), 'L')
    if image.mode == 'P':
        image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
    if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert('RGB')
    return image if image.mode == 'RGB' else image.convert('RGB')


def _resize_and_crop(image, spec):
    """Short side → spec.resize, centre crop spec.size, in one resample over the crop window only.

    Resampling just the window (``box``) gives the same pixels as resizing the
    whole image and cropping, but costs no more for a panorama than for a square.
    With ``spec.resize_mode`` 'squash' the window is the whole image.
    """
    width, height = image.size
    if spec.resize_mode == SQUASH:
        squashed = image.resize((spec.size, spec.size), _RESAMPLE[spec.resample])
        return np.ascontiguousarray(np.asarray(squashed, dtype=np.uint8))
    factor = spec.resize / min(width, height)
    window = spec.size / factor
    left = (width - window) / 2
    top = (height - window) / 2
    cropped = image.resize((spec.size, spec.size), _RESAMPLE[spec.resample],
                           box=(left, top, left + window, top + window))
    return np.ascontiguousarray(np.asarray(cropped, dtype=np.uint8))
