"""The page's pictures: gallery thumbnails and attention heat tiles, as JPEG ``data:`` URIs."""
import base64
import concurrent.futures
import io

import numpy as np
from PIL import Image

from img2txt.model import storage
from img2txt.model.serving import image_decoding
from img2txt.model.input_spec import InputSpec

# Square centre crops from the pipelines' decoder, so a thumbnail gets the same
# EXIF, colour-mode and decompression-bomb handling as captioning did; ~5 kB
# each as JPEG keeps a full gallery of 500 at a few MB.
THUMBNAIL_SPEC = InputSpec(size=160, resize=160)
THUMBNAIL_QUALITY = 75
# Photos read and decoded at once: reads from gs:// wait on the network.
THUMBNAIL_THREADS = 8
# Side of each word's heat map tile (the encoder's crop scaled down): ~3 kB as
# JPEG, so six photos of ten-word captions add about 200 kB.
ATTENTION_TILE = 96
ATTENTION_QUALITY = 80
# The brightness a tile keeps where its word's attention is 0 (all of it where the attention peaks).
ATTENTION_FLOOR = 0.15


def thumbnail(uri):
    """A ``data:`` URI of a small JPEG of the image's centre, decoded by the pipelines' decoder."""
    return jpeg_uri(image_decoding.decode(storage.read_bytes(uri), THUMBNAIL_SPEC), THUMBNAIL_QUALITY)


def jpeg_uri(pixels, quality):
    """A ``data:`` URI of uint8 RGB ``pixels`` [H, W, 3] as JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'JPEG', quality=quality)
    return 'data:image/jpeg;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def thumbnails(uris):
    """``_thumbnail_or_reason`` of each of ``uris``, in order, reading ``THUMBNAIL_THREADS`` photos at once."""
    with concurrent.futures.ThreadPoolExecutor(THUMBNAIL_THREADS) as pool:
        return list(pool.map(_thumbnail_or_reason, uris))


def _thumbnail_or_reason(uri):
    """(data URI, None), or (None, why not) when the photo moved or changed since it was captioned."""
    try:
        return thumbnail(uri), None
    except (OSError, image_decoding.ImageDecodeError) as e:
        return None, f'no thumbnail: {type(e).__name__}: {e}'


def heat_tile(crop, weights, size=ATTENTION_TILE):
    """One word's heat map: ``crop`` (uint8 [S, S, 3]) scaled to ``size``, dimmed where ``weights`` ([H, W]) are low.

    The weights are scaled to their peak and upsampled bicubically to the tile,
    so the word's most attended spot keeps the image's brightness and a cell
    never looked at keeps ``ATTENTION_FLOOR`` of it.
    """
    image = scaled(crop, size).astype(np.float32)
    peak = float(weights.max())
    grid = Image.fromarray(np.asarray(weights / peak if peak > 0 else weights, np.float32))
    level = np.clip(np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC)), 0, 1)
    return np.round(image * (ATTENTION_FLOOR + (1 - ATTENTION_FLOOR) * level)[..., None]).astype(np.uint8)


def scaled(crop, size):
    """uint8 RGB ``crop`` [S, S, 3] resized to [size, size, 3]."""
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))
