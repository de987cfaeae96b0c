"""Image bytes → the encoder's input crops in TensorFlow ops: the exported captioner's in-graph decoder.

``decode_images`` follows ``image_decoding.decode`` step by step, so
that captions of bytes match those of the pipelines' pixels: JPEGs are scaled
down in the DCT domain exactly as Pillow's draft mode does, decoded with
libjpeg's accurate integer IDCT (Pillow's), turned by their EXIF orientation;
transparency is composited on white; an animation gives its first frame; the
crop is resampled straight from the image with Pillow's filter and pixel
geometry (``ScaleAndTranslate``), not resized whole and then cropped. On
photos the crops differ from Pillow's by rounding (mean absolute difference
about 0.2 of 255).

Decompression bombs: TensorFlow's decoders allocate whatever a header
declares (a 1.2 MB PNG declaring 20000×20000 pixels took 8.7 GB and 33 s), so
the width and height are first read from each header with string ops (JPEG
through libjpeg's header reader, ``extract_jpeg_shape``; PNG IHDR; GIF logical
screen and first image descriptor; BMP info header; WebP VP8, VP8L or VP8X
chunk) and a batch with an image above ``max_pixels`` fails before any pixel
is allocated, with the limit the Pillow path applies by default.

GIF: TensorFlow's GIF decoder decodes every frame and leaves transparent
pixels black, so the bytes are rewritten first, in-graph: cut after the first
frame's image data, and, when that frame has a transparent colour (the
Graphic Control Extension before it), the flag is cleared and the colour's
palette entry made white. GIF transparency is all or nothing, so this is
exactly Pillow's compositing on white.

Differences from the pipelines' decoder that remain: TIFF is refused; only
the first 128 KiB of a JPEG are searched for EXIF; a GIF whose first frame
does not cover its whole logical screen (encoders write full first frames)
is not placed on that screen as Pillow does, so its pixels differ.
"""
import tensorflow as tf

from img2txt.model.input_spec import DEFAULT_MAX_PIXELS, SQUASH

# Format codes of ``_image_formats``, one per decoding path.
_JPEG, _PNG, _GIF, _BMP, _WEBP = range(5)
# Magic bytes of the formats decoded in-graph (the pipelines' decoder also
# takes TIFF, which TensorFlow cannot decode). Pillow sniffs the same way.
_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_GIF_MAGIC = (b'GIF87a', b'GIF89a')
_BMP_MAGIC = b'BM'
_RIFF_MAGIC, _WEBP_MAGIC = b'RIFF', b'WEBP'
_MAGIC_BYTES = 12
# Every header field the sizes are read from lies in a file's first bytes
# (WebP's VP8 frame size, the furthest, ends at byte 30), except a GIF's image
# descriptor, which the GIF walk finds.
_HEADER_BYTES = 32

# GIF blocks (GIF89a specification): the introducers of an extension, an image
# descriptor and the trailer; the Graphic Control Extension's label.
_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, b'\x3b'
_GIF_GRAPHIC_CONTROL = 0xF9
# The logical screen descriptor's flags byte and where its colour table starts.
_GIF_SCREEN_FLAGS, _GIF_GLOBAL_TABLE = 10, 13
# Sub-blocks one step of ``_sub_blocks_end`` checks at once, and the steps it
# takes before handing over to pointer jumping: 64 steps of 4096 blocks walk
# 64 MiB of image data in 255-byte blocks.
_SUB_BLOCK_WINDOW, _SUB_BLOCK_STEPS = 4096, 64

# The EXIF block is an APP1 segment ("Exif\0\0" then a TIFF structure) among
# the segments before the image data; camera files put it first.
_EXIF_HEADER = 'Exif\x00\x00'
_EXIF_SEARCH_BYTES = 1 << 17
_ORIENTATION_TAG = 0x0112

# The TensorFlow kernels equal to Pillow's filters, antialiased when downscaling.
_KERNELS = {'bicubic': 'keyscubic', 'bilinear': 'triangle'}


def decode_images(images, input_spec, max_pixels=DEFAULT_MAX_PIXELS):
    """Image file bytes → the encoder's input crops, in TensorFlow ops.

    Args:
      images: string ``[B]``: JPEG, PNG, GIF, BMP or WebP file bytes (format
        sniffed from the bytes; animations give their first frame).
      input_spec: the encoder's ``InputSpec``.
      max_pixels: refuse images whose header declares more pixels (width ×
        height) than this.

    Returns:
      uint8 ``[B, size, size, 3]``.

    Raises:
      tf.errors.InvalidArgumentError: the whole batch fails when one image
        does. For empty input, bytes of another format or a header declaring
        more than ``max_pixels`` pixels, the message names the first such
        image's index in the batch; for corrupt data of a known format, it is
        TensorFlow's decoder message.
    """
    images = tf.convert_to_tensor(images, tf.string)
    formats = _image_formats(images)
    first_bad = _first(formats < 0)
    bad_length = tf.reduce_sum(tf.where(tf.range(tf.size(images)) == first_bad, tf.strings.length(images), 0))
    check_formats = tf.debugging.Assert(tf.reduce_all(formats >= 0), [tf.strings.format(
        'image {} of the batch ({} bytes) is not a JPEG, PNG, GIF, BMP or WebP file', (first_bad, bad_length))])

    with tf.control_dependencies([check_formats]):
        sizes = tf.map_fn(lambda args: _declared_size(*args), (images, formats),
                          fn_output_signature=tf.TensorSpec([2], tf.int64))
    # width > max_pixels // height is width × height > max_pixels, without overflowing 64 bits.
    too_large = (sizes[:, 0] > 0) & (sizes[:, 1] > max_pixels // tf.maximum(sizes[:, 0], 1))
    first_large = _first(too_large)
    large = tf.gather(tf.concat([sizes, [[0, 0]]], axis=0), first_large)
    check_sizes = tf.debugging.Assert(~tf.reduce_any(too_large), [tf.strings.format(
        'image {} of the batch declares {}x{} = {} pixels, more than the limit of {} (possible decompression bomb)',
        (first_large, large[1], large[0], large[0] * large[1], max_pixels))])
    size = input_spec.size

    def decode_one(args):
        data, image_format = args

        def decode_other():
            # Each format's own channels: the WebP decoder refuses any other count.
            return _to_rgb(tf.io.decode_image(data, channels=0, expand_animations=False))

        image = tf.switch_case(image_format, {
            _JPEG: lambda: _decode_jpeg(data, input_spec),
            _GIF: lambda: tf.io.decode_gif(_gif_first_frame_on_white(data))[0],
            _PNG: decode_other, _BMP: decode_other, _WEBP: decode_other,
        })
        return _resize_and_crop(image, input_spec)

    with tf.control_dependencies([check_sizes]):
        return tf.map_fn(decode_one, (images, formats),
                         fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))


def _first(condition):
    """The index of the first true element of a bool vector; its length when there is none (also when empty)."""
    count = tf.size(condition)
    return tf.reduce_min(tf.concat([tf.where(condition, tf.range(count), count), [count]], axis=0))


def _image_formats(images):
    """int32 ``[B]``: each image's format code (``_JPEG`` ...), -1 for empty input or another format."""
    # Padded so that every head has all the magic bytes' positions.
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(images, 0, _MAGIC_BYTES),
                                              b'\x00' * _MAGIC_BYTES]), 0, _MAGIC_BYTES)

    def starts_with(magic, at=0):
        return tf.equal(tf.strings.substr(head, at, len(magic)), magic)

    codes = [(_JPEG, starts_with(_JPEG_MAGIC)), (_PNG, starts_with(_PNG_MAGIC)),
             (_GIF, starts_with(_GIF_MAGIC[0]) | starts_with(_GIF_MAGIC[1])), (_BMP, starts_with(_BMP_MAGIC)),
             (_WEBP, starts_with(_RIFF_MAGIC) & starts_with(_WEBP_MAGIC, at=8))]
    result = tf.fill(tf.shape(images), -1)
    for code, matches in codes:
        result = tf.where(matches, code, result)
    return result


class _Bytes:
    """Unsigned integers read from a byte string; reads past its end give zeros."""

    def __init__(self, data):
        values = tf.io.decode_raw(data, tf.uint8)
        self.length = tf.size(values, out_type=tf.int64)
        # uint8 [length + 1]: one zero past the end, where every read beyond it lands.
        self.values = tf.pad(values, [[0, 1]])

    def __call__(self, offsets, width=1, big_endian=False):
        """The ``width``-byte integers at ``offsets`` (any shape); ``big_endian`` may be a bool tensor."""
        offsets = tf.cast(offsets, tf.int64)
        digits = tf.cast(tf.gather(
            self.values, tf.minimum(offsets[..., tf.newaxis] + tf.range(width, dtype=tf.int64), self.length)), tf.int64)
        powers = tf.where(big_endian, tf.range(width - 1, -1, -1, dtype=tf.int64), tf.range(width, dtype=tf.int64))
        return tf.reduce_sum(digits * 256 ** powers, axis=-1)


def _declared_size(data, image_format):
    """int64 ``[height, width]`` that an image's header declares, read without decoding any pixel.

    Zeros where a header is too short to hold them: the decoder then fails on it.
    """
    head = _Bytes(tf.strings.substr(data, 0, _HEADER_BYTES))

    def webp():
        # The first chunk after "RIFF" size "WEBP": a lossy frame (its
        # 14-bit sizes after the start code), a lossless one (14-bit sizes
        # minus one after the signature byte) or the extended header (24-bit
        # canvas sizes minus one).
        chunk = tf.strings.substr(data, 12, 4)
        fourteen_bits = 1 << 14
        lossless = head(21, 4)
        return tf.case([
            (tf.equal(chunk, 'VP8 '), lambda: tf.stack([head(28, 2) % fourteen_bits, head(26, 2) % fourteen_bits])),
            (tf.equal(chunk, 'VP8L'), lambda: tf.stack([lossless // fourteen_bits % fourteen_bits + 1,
                                                        lossless % fourteen_bits + 1])),
            (tf.equal(chunk, 'VP8X'), lambda: tf.stack([head(27, 3) + 1, head(24, 3) + 1])),
        ], default=lambda: tf.zeros([2], tf.int64))

    def bmp():
        # The info header's 32-bit width and signed height (negative: rows
        # top-down), read as TensorFlow's decoder reads them.
        height = head(22, 4)
        return tf.stack([tf.where(height >= 1 << 31, (1 << 32) - height, height), head(18, 4)])

    return tf.switch_case(image_format, {
        _JPEG: lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
        _PNG: lambda: tf.stack([head(20, 4, big_endian=True), head(16, 4, big_endian=True)]),
        _GIF: lambda: _gif_declared_size(data),
        _BMP: bmp,
        _WEBP: webp,
    })


def _gif_declared_size(data):
    """``[height, width]`` of a GIF: the larger of its logical screen and its first image, which giflib allocates."""
    gif = _Bytes(data)
    image = _gif_walk(gif)[1]
    # The image descriptor: introducer, left, top, width, height (16-bit).
    image_height = tf.where(image >= 0, gif(image + 7, 2), 0)
    image_width = tf.where(image >= 0, gif(image + 5, 2), 0)
    return tf.stack([tf.maximum(gif(8, 2), image_height), tf.maximum(gif(6, 2), image_width)])


def _gif_table_bytes(flags):
    """Bytes of the colour table a logical screen or image descriptor flags byte announces (0 if none)."""
    return tf.where(flags >= 0x80, 3 * 2 ** (flags % 8 + 1), 0)


def _gif_walk(gif):
    """Walks a GIF's blocks up to its first image descriptor.

    Returns int64 scalars ``(control, image)``: the positions of the last
    Graphic Control Extension before the first image and of the first image
    descriptor, -1 when not found.
    """
    def step(position, in_extension, control, image):
        byte = gif(position)
        # At a block: an extension (introducer, label, then data sub-blocks)
        # or an image descriptor, which ends the walk, as anything else does.
        # In an extension's sub-blocks: a length byte, then that many bytes;
        # length 0 ends them.
        is_extension = ~in_extension & tf.equal(byte, _GIF_EXTENSION)
        control = tf.where(is_extension & tf.equal(gif(position + 1), _GIF_GRAPHIC_CONTROL), position, control)
        image = tf.where(~in_extension & tf.equal(byte, _GIF_IMAGE), position, image)
        # Past the end ends the walk too.
        position = tf.where(is_extension, position + 2, tf.where(in_extension, position + 1 + byte, gif.length))
        return position, is_extension | (in_extension & tf.not_equal(byte, 0)), control, image

    start = _GIF_GLOBAL_TABLE + _gif_table_bytes(gif(_GIF_SCREEN_FLAGS))
    not_found = tf.constant(-1, tf.int64)
    _, _, control, image = tf.while_loop(
        lambda position, *_: position < gif.length, step, (start, tf.constant(False), not_found, not_found))
    return control, image


def _sub_blocks_end(gif, start):
    """Just past the data sub-blocks from ``start``, their 0 terminator included; -1 if the file ends first.

    A frame's image data is thousands of sub-blocks, too many to walk one
    loop step each. Encoders write blocks of one length (255) but the last,
    so each step checks a window of the blocks ahead at once and skips the
    run of those with the current block's length. Files that still need many
    steps are finished by ``_pointer_jumping_end``, slower but with a bounded
    number of steps whatever the blocks.
    """
    blocks = tf.range(_SUB_BLOCK_WINDOW, dtype=tf.int64)

    def step(position, steps):
        length = gif(position)
        same = tf.equal(gif(position + (length + 1) * blocks), length)
        run = tf.reduce_min(tf.where(same, tf.constant(_SUB_BLOCK_WINDOW, tf.int64), blocks))
        return position + (length + 1) * run, steps + 1

    def in_blocks(position):
        return (position < gif.length) & tf.not_equal(gif(position), 0)

    position, _ = tf.while_loop(lambda position, steps: in_blocks(position) & (steps < _SUB_BLOCK_STEPS), step,
                                (tf.convert_to_tensor(start, tf.int64), tf.constant(0)))
    position = tf.cond(in_blocks(position), lambda: _pointer_jumping_end(gif, position), lambda: position)
    return tf.where(position < gif.length, position + 1, -1)


def _pointer_jumping_end(gif, start):
    """Where the sub-blocks from ``start`` end (their 0 length byte), in log2(file size) rounds at most.

    Every byte is taken for a length byte; after ``k`` rounds, ``jump[i]``
    is where ``2**k`` sub-blocks from ``i`` lead. A 0 length and the file's
    end lead to themselves.
    """
    lengths = tf.cast(gif.values, tf.int32)
    positions = tf.range(tf.size(lengths))
    jump = tf.where(tf.equal(lengths, 0), positions, tf.minimum(positions + 1 + lengths, tf.size(lengths) - 1))
    start = tf.cast(start, tf.int32)

    def unfinished(jump):
        return tf.not_equal(tf.gather(jump, tf.gather(jump, start)), tf.gather(jump, start))

    jump = tf.while_loop(unfinished, lambda jump: [tf.gather(jump, jump)], [jump])[0]
    return tf.cast(tf.gather(jump, start), tf.int64)


def _gif_first_frame_on_white(data):
    """GIF bytes cut after the first frame, its transparent colour (if any) made opaque white.

    TensorFlow's GIF decoder then gives what Pillow's first frame composited
    on white gives, and decodes one frame, not every frame the file holds.
    Files whose first frame cannot be found go to the decoder unchanged.
    """
    gif = _Bytes(data)
    control, image = _gif_walk(gif)
    # The image descriptor: 10 bytes (flags last), its colour table, the LZW
    # code size, then the data sub-blocks.
    image_flags = gif(image + 9)
    end = tf.where(image >= 0, _sub_blocks_end(gif, image + 11 + _gif_table_bytes(image_flags)), -1)
    # The Graphic Control Extension: introducer, label, size 4, flags (bit 0:
    # transparency), delay (2 bytes), the transparent colour's index.
    flags_at = control + 3
    flags = gif(flags_at)
    transparent = gif(control + 6)
    local = image_flags >= 0x80
    table_at = tf.where(local, image + 10, _GIF_GLOBAL_TABLE)
    table_bytes = _gif_table_bytes(tf.where(local, image_flags, gif(_GIF_SCREEN_FLAGS)))
    opaque = (control >= 0) & (image >= 0) & tf.equal(flags % 2, 1) & (3 * transparent < table_bytes)
    byte_values = tf.constant(bytes(range(256)))

    def on_white():
        flags_cleared = _splice(data, flags_at, tf.strings.substr(byte_values, flags - 1, 1))
        return _splice(flags_cleared, table_at + 3 * transparent, b'\xff\xff\xff')

    data = tf.cond(opaque, on_white, lambda: data)
    return tf.cond(end >= 0, lambda: tf.strings.join([tf.strings.substr(data, tf.zeros_like(end), end), _GIF_TRAILER]),
                   lambda: data)


def _splice(data, at, new):
    """``data`` with the bytes from ``at`` replaced by ``new`` (a string of as many bytes)."""
    replaced = tf.cast(tf.strings.length(new), tf.int64)
    return tf.strings.join([tf.strings.substr(data, tf.zeros_like(at), at), new,
                            tf.strings.substr(data, at + replaced, -1)])


def _decode_jpeg(data, input_spec):
    """A JPEG as Pillow's decoder gives it: DCT-domain downscale, accurate IDCT, EXIF orientation."""
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    height, width = shape[0], shape[1]
    short = tf.maximum(tf.minimum(height, width), 1)
    # Pillow's draft() with InputSpec.draft_size: the size wanted keeps the
    # short side >= resize (squash: both sides >= size); the scale is the
    # largest of 8, 4, 2, 1 that still covers it on both sides.
    if input_spec.resize_mode == SQUASH:
        needed = tf.constant(input_spec.size, tf.int64)
        wanted_width = wanted_height = needed
    else:
        needed = tf.constant(input_spec.resize, tf.int64)
        wanted_width = (width * needed + short - 1) // short
        wanted_height = (height * needed + short - 1) // short
    fits = tf.minimum(width // wanted_width, height // wanted_height)
    scales = (1, 2, 4, 8)
    index = tf.where(short > needed, tf.reduce_sum(tf.cast(fits >= scales[1:], tf.int32)), 0)
    image = tf.switch_case(index, [
        lambda scale=scale: tf.io.decode_jpeg(data, channels=3, ratio=scale, dct_method='INTEGER_ACCURATE')
        for scale in scales])
    return _apply_orientation(image, _exif_orientation(data))


def _exif_orientation(data):
    """The EXIF orientation (1-8) of JPEG bytes: 1 when there is none or it cannot be read."""
    parts = tf.strings.split(tf.strings.substr(data, 0, _EXIF_SEARCH_BYTES), sep=_EXIF_HEADER, maxsplit=1)
    found = tf.size(parts) == 2
    # Bad offsets read zeros, and then find no orientation entry.
    tiff = _Bytes(parts[-1])
    little_endian = tf.equal(tiff(0), ord('I')) & tf.equal(tiff(1), ord('I'))
    big_endian = tf.equal(tiff(0), ord('M')) & tf.equal(tiff(1), ord('M'))

    # TIFF: byte order (2), 42 (2), offset of the first directory (4); a
    # directory: entry count (2), then 12-byte entries: tag (2), type (2),
    # count (4), value (a SHORT in the first 2 of 4 bytes).
    directory = tiff(4, 4, big_endian)
    entries = directory + 2 + 12 * tf.range(tiff(directory, 2, big_endian), dtype=tf.int64)
    values = tf.where(tiff(entries, 2, big_endian) == _ORIENTATION_TAG, tiff(entries + 8, 2, big_endian), 0)
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
    """Short side → resize, centre crop ``size``, in one resample of the crop window, as Pillow's ``box=``.

    With ``resize_mode`` 'squash': the whole image → ``size`` × ``size``, as Pillow's ``resize``.
    """
    shape = tf.cast(tf.shape(image), tf.float32)
    height, width = shape[0], shape[1]
    if input_spec.resize_mode == SQUASH:
        scale = input_spec.size / tf.stack([height, width])
        translation = tf.zeros([2])
    else:
        factor = input_spec.resize / tf.minimum(height, width)
        window = input_spec.size / factor
        scale = tf.stack([factor, factor])
        # ScaleAndTranslate maps output pixel centre x + 0.5 to input (x + 0.5 - translation) / scale.
        translation = tf.stack([(window - height) / 2, (window - width) / 2]) * factor
    resampled = tf.raw_ops.ScaleAndTranslate(
        images=image[tf.newaxis], size=[input_spec.size, input_spec.size], scale=scale,
        translation=translation, kernel_type=_KERNELS[input_spec.resample], antialias=True)[0]
    return tf.cast(tf.clip_by_value(tf.round(resampled), 0, 255), tf.uint8)
