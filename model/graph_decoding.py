"""Image bytes → the encoder's input crops in TensorFlow ops: the exported captioner's in-graph decoder.

``decode_images`` follows ``pipelines.image_decoding.decode`` step by step, so
that captions of bytes match those of the pipelines' pixels: JPEGs are scaled
down in the DCT domain exactly as Pillow's draft mode does, decoded with
libjpeg's accurate integer IDCT (Pillow's), turned by their EXIF orientation;
transparency is composited on white; the crop is resampled straight from the
image with Pillow's filter and pixel geometry (``ScaleAndTranslate``), not
resized whole and then cropped. On photos the crops differ from Pillow's by
rounding (mean absolute difference about 0.2 of 255). Differences left: TIFF
is refused; a GIF's transparent pixels are black, not white (TensorFlow's GIF
decoder drops transparency); only the first 128 KiB of a JPEG are searched for
EXIF; there is no decompression-bomb limit beyond the decoders' own.
"""
import tensorflow as tf

# Magic bytes of the formats decoded in-graph (the pipelines' decoder also
# takes TIFF, which TensorFlow cannot decode). Pillow sniffs the same way.
_JPEG = b'\xff\xd8\xff'
_PNG = b'\x89PNG\r\n\x1a\n'
_GIF = (b'GIF87a', b'GIF89a')
_BMP = b'BM'
_RIFF, _WEBP = b'RIFF', b'WEBP'
_MAGIC_BYTES = 12
# How decode_images' per-image function treats each format: JPEGs get
# Pillow's draft mode and EXIF orientation, the others a plain decode.
_AS_JPEG, _AS_OTHER = range(2)

# The EXIF block is an APP1 segment ("Exif\0\0" then a TIFF structure) among
# the segments before the image data; camera files put it first.
_EXIF_HEADER = 'Exif\x00\x00'
_EXIF_SEARCH_BYTES = 1 << 17
_ORIENTATION_TAG = 0x0112

# The TensorFlow kernels equal to Pillow's filters, antialiased when downscaling.
_KERNELS = {'bicubic': 'keyscubic', 'bilinear': 'triangle'}


def decode_images(images, input_spec):
    """Image file bytes → the encoder's input crops, in TensorFlow ops.

    Args:
      images: string ``[B]``: JPEG, PNG, GIF, BMP or WebP file bytes (format
        sniffed from the bytes; animations give their first frame).
      input_spec: the encoder's ``InputSpec``.

    Returns:
      uint8 ``[B, size, size, 3]``.

    Raises:
      tf.errors.InvalidArgumentError: the whole batch fails when one image
        does. For empty input or bytes of another format, the message names
        the first such image's index in the batch; for corrupt data of a known
        format, it is TensorFlow's decoder message.
    """
    images = tf.convert_to_tensor(images, tf.string)
    formats = _image_formats(images)
    # Scalars that also exist for an empty batch (B when no image is bad).
    index = tf.range(tf.size(images))
    first_bad = tf.reduce_min(tf.where(formats < 0, index, tf.size(images)))
    bad_length = tf.reduce_sum(tf.where(index == first_bad, tf.strings.length(images), 0))
    check = tf.debugging.Assert(tf.reduce_all(formats >= 0), [tf.strings.format(
        'image {} of the batch ({} bytes) is not a JPEG, PNG, GIF, BMP or WebP file', (first_bad, bad_length))])
    size = input_spec.size

    def decode_one(args):
        data, image_format = args
        image = tf.switch_case(image_format, {
            _AS_JPEG: lambda: _decode_jpeg(data, input_spec),
            # Each format's own channels: the WebP decoder refuses any other count.
            _AS_OTHER: lambda: _to_rgb(tf.io.decode_image(data, channels=0, expand_animations=False)),
        })
        return _resize_and_crop(image, input_spec)

    with tf.control_dependencies([check]):
        return tf.map_fn(decode_one, (images, formats),
                         fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))


def _image_formats(images):
    """int32 ``[B]``: how to decode each image (``_AS_*``), -1 for empty input or another format."""
    # Padded so that every head has all the magic bytes' positions.
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(images, 0, _MAGIC_BYTES),
                                              b'\x00' * _MAGIC_BYTES]), 0, _MAGIC_BYTES)

    def starts_with(magic, at=0):
        return tf.equal(tf.strings.substr(head, at, len(magic)), magic)

    other = (starts_with(_PNG) | starts_with(_GIF[0]) | starts_with(_GIF[1]) | starts_with(_BMP)
             | (starts_with(_RIFF) & starts_with(_WEBP, at=8)))
    return tf.where(starts_with(_JPEG), _AS_JPEG, tf.where(other, _AS_OTHER, -1))


def _decode_jpeg(data, input_spec):
    """A JPEG as Pillow's decoder gives it: DCT-domain downscale, accurate IDCT, EXIF orientation."""
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    height, width = shape[0], shape[1]
    short = tf.maximum(tf.minimum(height, width), 1)
    # Pillow's draft(): the size wanted keeps the short side >= resize; the
    # scale is the largest of 8, 4, 2, 1 that still covers it on both sides.
    resize = tf.constant(input_spec.resize, tf.int64)
    wanted_width = (width * resize + short - 1) // short
    wanted_height = (height * resize + short - 1) // short
    fits = tf.minimum(width // wanted_width, height // wanted_height)
    scales = (1, 2, 4, 8)
    index = tf.where(short > resize, tf.reduce_sum(tf.cast(fits >= scales[1:], tf.int32)), 0)
    image = tf.switch_case(index, [
        lambda scale=scale: tf.io.decode_jpeg(data, channels=3, ratio=scale, dct_method='INTEGER_ACCURATE')
        for scale in scales])
    return _apply_orientation(image, _exif_orientation(data))


def _exif_orientation(data):
    """The EXIF orientation (1-8) of JPEG bytes: 1 when there is none or it cannot be read."""
    parts = tf.strings.split(tf.strings.substr(data, 0, _EXIF_SEARCH_BYTES), sep=_EXIF_HEADER, maxsplit=1)
    found = tf.size(parts) == 2
    tiff = tf.cast(tf.io.decode_raw(parts[-1], tf.uint8), tf.int64)
    # Reads past the end give zeros: bad offsets then find no orientation entry.
    last = tf.size(tiff, out_type=tf.int64)
    tiff = tf.pad(tiff, [[0, 1]])
    little_endian = tf.reduce_all(tiff[:2] == ord('I'))
    big_endian = tf.reduce_all(tiff[:2] == ord('M'))

    def unsigned(offsets, width):
        digits = tf.gather(tiff, tf.minimum(offsets[..., tf.newaxis] + tf.range(width, dtype=tf.int64), last))
        weights = tf.where(little_endian, 256 ** tf.range(width, dtype=tf.int64),
                           256 ** tf.range(width - 1, -1, -1, dtype=tf.int64))
        return tf.reduce_sum(digits * weights, axis=-1)

    # TIFF: byte order (2), 42 (2), offset of the first directory (4); a
    # directory: entry count (2), then 12-byte entries: tag (2), type (2),
    # count (4), value (a SHORT in the first 2 of 4 bytes).
    directory = unsigned(tf.constant(4, tf.int64), 4)
    entries = directory + 2 + 12 * tf.range(unsigned(directory, 2), dtype=tf.int64)
    values = tf.where(unsigned(entries, 2) == _ORIENTATION_TAG, unsigned(entries + 8, 2), 0)
    orientation = tf.reduce_max(tf.concat([values, [0]], axis=0))
    valid = found & (little_endian | big_endian) & (orientation >= 1) & (orientation <= 8)
    return tf.cast(tf.where(valid, orientation, 1), tf.int32)


def _apply_orientation(image, orientation):
    """Turns an image as Pillow's ``ImageOps.exif_transpose`` does for EXIF orientation 1-8."""
    def transpose(x):
        return tf.transpose(x, [1, 0, 2])
    return tf.switch_case(orientation - 1, [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0, 1]),
        lambda: tf.reverse(image, [0]),
        lambda: transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.reverse(transpose(image), [0, 1]),
        lambda: tf.image.rot90(image, 1),
    ])


def _to_rgb(image):
    """uint8 grey, grey + alpha, RGB or RGBA → RGB; transparency composited on white, as the pipelines' decoder."""
    channels = tf.shape(image)[-1]
    colour = tf.cast(tf.gather(image, tf.where(channels >= 3, [0, 1, 2], [0, 0, 0]), axis=-1), tf.float32)
    alpha = tf.where(channels % 2 == 0, tf.cast(image[..., -1:], tf.float32) / 255.0, 1.0)
    return tf.cast(tf.round(colour * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def _resize_and_crop(image, input_spec):
    """Short side → resize, centre crop ``size``, in one resample of the crop window, as Pillow's ``box=``."""
    shape = tf.cast(tf.shape(image), tf.float32)
    height, width = shape[0], shape[1]
    factor = input_spec.resize / tf.minimum(height, width)
    window = input_spec.size / factor
    # ScaleAndTranslate maps output pixel centre x + 0.5 to input (x + 0.5 - translation) / scale.
    translation = tf.stack([(window - height) / 2, (window - width) / 2]) * factor
    resampled = tf.raw_ops.ScaleAndTranslate(
        images=image[tf.newaxis], size=[input_spec.size, input_spec.size], scale=tf.stack([factor, factor]),
        translation=translation, kernel_type=_KERNELS[input_spec.resample], antialias=True)[0]
    return tf.cast(tf.clip_by_value(tf.round(resampled), 0, 255), tf.uint8)
