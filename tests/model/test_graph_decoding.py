"""The in-graph decoder against the pipelines' Pillow decoder: same crops, same refusals."""
import struct

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from captioner_data import encoded, png_declaring
from img2txt.model.serving import graph_decoding, image_decoding
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS, InputSpec

SPEC = InputSpec(224, 256, 'bicubic')


def _orientation_jpeg(orientation):
    image = Image.fromarray(skimage.data.chelsea())
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, 'JPEG', quality=90, exif=exif)


def _transparent():
    rgba = np.array(Image.fromarray(skimage.data.astronaut()).convert('RGBA'))
    rgba[:, :200, 3] = 0
    rgba[:, 200:300, 3] = 128
    return Image.fromarray(rgba)


def _top_down_bmp(image):
    """A BMP whose rows are stored top first, as a negative height in its header says."""
    data = bytearray(encoded(image, 'BMP'))
    offset, = struct.unpack_from('<I', data, 10)
    width, height = image.size
    row = (width * 3 + 3) // 4 * 4
    rows = [data[offset + i * row:offset + (i + 1) * row] for i in range(height)]
    data[offset:offset + height * row] = b''.join(reversed(rows))
    struct.pack_into('<i', data, 22, -height)
    return bytes(data)


def _animation(first, transparency=False):
    """A GIF whose first frame is ``first`` and whose later frames are grey fields."""
    later = [Image.new('RGB', first.size, (60 * i, 60 * i, 60 * i)) for i in range(1, 4)]
    frames = [first] + later
    return encoded(frames[0], 'GIF', save_all=True, append_images=frames[1:], **(
        {'transparency': 0} if transparency else {}))


@pytest.fixture(scope='module')
def decoder_cases():
    """name → image bytes in every format and mode the in-graph decoder handles."""
    rocket = Image.fromarray(skimage.data.rocket())
    astronaut = Image.fromarray(skimage.data.astronaut())
    transparent = _transparent()
    return {
        # 2000x1336: both decoders scale it down in the DCT domain (1/4 for a 256 short side, 1/8 for 80).
        'large jpeg': encoded(rocket.resize((2000, 1336), Image.BICUBIC), 'JPEG', quality=90),
        'grey jpeg': encoded(rocket.convert('L'), 'JPEG'),
        'cmyk jpeg': encoded(rocket.convert('CMYK'), 'JPEG'),
        **{f'exif orientation {o}': _orientation_jpeg(o) for o in range(1, 9)},
        'png': encoded(astronaut, 'PNG'),
        'transparent png': encoded(transparent, 'PNG'),
        'palette png with transparency': encoded(transparent.convert('P'), 'PNG'),
        'grey png': encoded(astronaut.convert('L'), 'PNG'),
        'small png (upscaled)': encoded(astronaut.resize((100, 60)), 'PNG'),
        'webp': encoded(astronaut, 'WEBP', quality=90),
        'transparent webp': encoded(transparent, 'WEBP', lossless=True),
        'gif': encoded(astronaut, 'GIF'),
        # Its left 200 columns are transparent: white in both decoders, not TensorFlow's black.
        'transparent gif': encoded(transparent, 'GIF'),
        'animated gif': _animation(astronaut),
        'animated gif, first frame transparent': _animation(transparent.convert('P'), transparency=True),
        'bmp': encoded(astronaut, 'BMP'),
        'top-down bmp': _top_down_bmp(astronaut.resize((300, 200))),
    }


@pytest.mark.parametrize('spec', [SPEC, InputSpec(64, 80, 'bilinear'), InputSpec(224, 256, 'bicubic', 'squash'),
                                  InputSpec(64, 80, 'bilinear', 'squash')], ids=str)
def test_in_graph_decoder_matches_the_pipelines_decoder(decoder_cases, spec):
    images = list(decoder_cases.values())
    decoded = tf.function(lambda x: graph_decoding.decode_images(x, spec))(tf.constant(images)).numpy()
    assert decoded.shape == (len(images), spec.size, spec.size, 3) and decoded.dtype == np.uint8
    for name, data, pixels in zip(decoder_cases, images, decoded):
        difference = np.abs(pixels.astype(int) - image_decoding.decode(data, spec))
        # Rounding only: a wrong crop, scale, orientation or background would differ by tens on average.
        assert difference.mean() < 0.5 and difference.max() <= 12, (name, difference.mean(), difference.max())


@tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int64)], autograph=False)
def decode_images(images, max_pixels):
    return graph_decoding.decode_images(images, SPEC, max_pixels)


def _rechunked(gif, lengths):
    """The GIF with its first frame's image data cut into sub-blocks of the given lengths in turn."""
    # The first 512x512 image descriptor at 0, 0 (Pillow writes no local colour table for a first frame).
    image = gif.index(b'\x2c\x00\x00\x00\x00\x00\x02\x00\x02')
    assert gif[image + 9] < 0x80
    position = start = image + 11
    payload = []
    while gif[position]:
        payload.append(gif[position + 1:position + 1 + gif[position]])
        position += 1 + gif[position]
    payload = b''.join(payload)
    blocks, offset = [], 0
    while offset < len(payload):
        length = lengths[len(blocks) % len(lengths)]
        blocks.append(bytes([len(payload[offset:offset + length])]) + payload[offset:offset + length])
        offset += length
    return gif[:start] + b''.join(blocks) + gif[position:]


def test_only_a_gifs_first_frame_is_decoded():
    data = _animation(Image.fromarray(skimage.data.astronaut()))
    frames = tf.io.decode_gif(data).numpy()
    assert len(frames) == 4
    # Encoders write 255-byte sub-blocks; blocks of changing lengths take the slower, general path.
    for gif in (data, _rechunked(data, [100, 150])):
        first = tf.io.decode_gif(graph_decoding._gif_first_frame_on_white(tf.constant(gif))).numpy()
        assert len(first) == 1
        np.testing.assert_array_equal(first[0], frames[0])


@pytest.mark.parametrize('fmt, save_args', [
    ('JPEG', {}), ('PNG', {}), ('GIF', {}), ('BMP', {}),
    ('WEBP', {}),                               # lossy: a VP8 chunk
    ('WEBP', {'lossless': True}),               # VP8L
    ('WEBP', {'exif': b'Exif\x00\x00MM\x00*'}),  # metadata needs the extended header: VP8X
], ids=['jpeg', 'png', 'gif', 'bmp', 'webp-vp8', 'webp-vp8l', 'webp-vp8x'])
def test_the_pixel_limit_applies_to_the_declared_width_times_height(fmt, save_args):
    data = encoded(Image.new('RGB', (200, 100), (200, 30, 30)), fmt, **save_args)
    small = encoded(Image.new('RGB', (10, 10)), 'PNG')
    assert decode_images(tf.constant([small, data]), 20_000).shape == (2, SPEC.size, SPEC.size, 3)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r'image 1 of the batch declares 200x100 = 20000 pixels, more than the limit of 19999'):
        decode_images(tf.constant([small, data]), 19_999)
    # The Pillow decoder draws the same line.
    with pytest.raises(image_decoding.ImageTooLargeError):
        image_decoding.decode(data, SPEC, max_pixels=19_999)


def jpeg_declaring(width, height):
    data = bytearray(encoded(Image.new('RGB', (8, 8)), 'JPEG'))
    # SOF0: marker, length (2), precision (1), height (2), width (2).
    struct.pack_into('>HH', data, data.index(b'\xff\xc0') + 5, height, width)
    return bytes(data)


def gif_declaring(screen, image):
    """A one-colour GIF whose logical screen and image descriptor claim the sizes given, with one pixel of data."""
    return b''.join([
        # A global colour table of two entries, white first.
        b'GIF89a', struct.pack('<HHBBB', *screen, 0x80, 0, 0), b'\xff\xff\xff\x00\x00\x00',
        b'\x2c', struct.pack('<HHHHB', 0, 0, *image, 0),
        # LZW code size 2; clear, index 0, end of information; the end of the blocks; the trailer.
        b'\x02\x02\x44\x01\x00', b'\x3b'])


def riff_declaring(width, height, chunk):
    data = bytearray(encoded(Image.new('RGB', (16, 16)), 'WEBP', **(
        {'lossless': True} if chunk == b'VP8L' else {'exif': b'Exif\x00\x00MM\x00*'} if chunk == b'VP8X' else {})))
    assert data[12:16] == chunk
    if chunk == b'VP8 ':
        struct.pack_into('<HH', data, 26, width, height)
    elif chunk == b'VP8L':
        # 14 bits each of width - 1 and height - 1, then the alpha and version bits, kept.
        flags = struct.unpack_from('<I', data, 21)[0] & 0xF0000000
        struct.pack_into('<I', data, 21, (width - 1) | (height - 1) << 14 | flags)
    else:
        data[24:30] = (width - 1).to_bytes(3, 'little') + (height - 1).to_bytes(3, 'little')
    return bytes(data)


def bmp_declaring(width, height):
    data = bytearray(encoded(Image.new('RGB', (4, 4)), 'BMP'))
    struct.pack_into('<ii', data, 18, width, height)
    return bytes(data)


# name → (bytes, the size the message names). Both decoders refuse each from
# its header, whatever Pillow's release would make of it.
BOMBS = {
    'png': (png_declaring(20_000, 20_000), '20000x20000'),
    # Its width × height overflows 64 bits.
    'png, 32-bit sizes': (png_declaring(2**32 - 1, 2**32 - 1), '4294967295x4294967295'),
    'jpeg': (jpeg_declaring(30_000, 20_000), '30000x20000'),
    'gif screen': (gif_declaring((20_000, 20_000), (1, 1)), '20000x20000'),
    'gif image': (gif_declaring((1, 1), (20_000, 20_000)), '20000x20000'),
    'bmp': (bmp_declaring(20_000, 20_000), '20000x20000'),
    'top-down bmp': (bmp_declaring(20_000, -20_000), '20000x20000'),
    'webp vp8': (riff_declaring(16_000, 16_000, b'VP8 '), '16000x16000'),
    'webp vp8l': (riff_declaring(16_000, 16_000, b'VP8L'), '16000x16000'),
    # Pillow 12 found this canvas corrupt, Pillow 13 a bomb of its own.
    'webp vp8x': (riff_declaring(20_000, 20_000, b'VP8X'), '20000x20000'),
}


@pytest.mark.parametrize('name', BOMBS)
def test_decompression_bombs_are_refused_from_the_header_as_by_the_pillow_decoder(name):
    bomb, size = BOMBS[name]
    small = encoded(Image.new('RGB', (10, 10)), 'PNG')
    with pytest.raises(tf.errors.InvalidArgumentError, match=f'image 1 of the batch declares {size} = '):
        decode_images(tf.constant([small, bomb, small]), DEFAULT_MAX_PIXELS)
    with pytest.raises(image_decoding.ImageTooLargeError, match=f'{size} = .* exceeds the limit'):
        image_decoding.decode(bomb, SPEC)


def test_the_hand_made_gif_of_the_bomb_tests_is_valid():
    # With a one-pixel image it decodes to white, so the 'gif' bombs are refused for their size alone.
    pixels = decode_images(tf.constant([gif_declaring((1, 1), (1, 1))]), DEFAULT_MAX_PIXELS).numpy()
    assert (pixels == 255).all()
