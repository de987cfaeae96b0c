"""The header reader: the sizes Pillow finds, for every accepted format, without Pillow."""
import io
import struct

import pytest
from PIL import Image

from captioner_data import encoded, photo
from img2txt.model.serving import image_decoding, image_header
from img2txt.model.input_spec import InputSpec

EXIF = Image.Exif()
EXIF[0x0112] = 6  # Orientation: the header's size is the stored one, as Pillow's.
# (format, Pillow save arguments) for the layouts photo collections hold.
LAYOUTS = [
    ('JPEG', {}), ('JPEG', {'progressive': True}), ('JPEG', {'exif': EXIF}),
    ('PNG', {}), ('PNG', {'interlace': 1}),
    ('GIF', {}), ('BMP', {}),
    ('WEBP', {}), ('WEBP', {'lossless': True}), ('WEBP', {'exif': EXIF}),
    ('TIFF', {}), ('TIFF', {'compression': 'tiff_lzw'}), ('TIFF', {'big_tiff': True}),
]


@pytest.mark.parametrize('fmt, save_args', LAYOUTS, ids=lambda v: str(v)[:20])
@pytest.mark.parametrize('size', [(1, 1), (37, 301), (640, 427)])
def test_declared_size_is_the_size_pillow_decodes(fmt, save_args, size):
    image = photo('astronaut').resize(size)
    data = encoded(image, fmt, **save_args)
    assert image_header.read(data) == (fmt, *size) == (fmt, *Image.open(io.BytesIO(data)).size)


def test_a_big_endian_tiff_and_an_os2_bitmap():
    # Pillow writes little-endian TIFFs: swap a hand-made big-endian one with SHORT sizes.
    entries = [(256, 3, 1, 300 << 16), (257, 3, 1, 200 << 16)]
    tiff = b'MM\x00*' + struct.pack('>I', 8) + struct.pack('>H', 2) + b''.join(
        struct.pack('>HHII', *entry) for entry in entries)
    assert image_header.read(tiff) == ('TIFF', 300, 200)
    os2 = b'BM' + bytes(12) + struct.pack('<IHH', 12, 640, 480)
    assert image_header.read(os2) == ('BMP', 640, 480)


def test_a_gif_declares_the_larger_of_its_screen_and_first_image():
    # A global colour table, then a comment extension before the image descriptor.
    gif = (b'GIF89a' + struct.pack('<HHBBB', 10, 20, 0x80, 0, 0) + bytes(6) + b'\x21\xfe\x03abc\x00'
           + b'\x2c' + struct.pack('<HHHHB', 0, 0, 30, 5, 0))
    assert image_header.read(gif) == ('GIF', 30, 20)


def test_other_bytes_are_no_format():
    assert image_header.read(b'') is None
    assert image_header.read(b'%PDF-1.4 ...') is None
    assert image_header.read(encoded(Image.new('RGB', (4, 4)), 'PPM')) is None


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'GIF', 'BMP', 'WEBP', 'TIFF'])
def test_a_header_cut_short_is_a_header_error(fmt):
    data = encoded(Image.new('RGB', (64, 48)), fmt)
    cut = {'JPEG': 20, 'PNG': 20, 'GIF': 12, 'BMP': 20, 'WEBP': 22, 'TIFF': 9}[fmt]
    with pytest.raises(image_header.HeaderError, match=f'{fmt} header cut short'):
        image_header.read(data[:cut])
    # The Pillow decoder turns it into its own error, naming the reason.
    with pytest.raises(image_decoding.CorruptImageError, match=f'unreadable image header: {fmt}'):
        image_decoding.decode(data[:cut], InputSpec(size=8, resize=8))


def test_a_tiff_bomb_is_refused_before_pillow_reads_it():
    data = bytearray(encoded(Image.new('RGB', (4, 4)), 'TIFF'))
    directory, = struct.unpack_from('<I', data, 4)
    count, = struct.unpack_from('<H', data, directory)
    for entry in range(directory + 2, directory + 2 + 12 * count, 12):
        tag, field_type = struct.unpack_from('<HH', data, entry)
        if tag in (256, 257):
            struct.pack_into('<H' if field_type == 3 else '<I', data, entry + 8, 30_000)
    assert image_header.read(bytes(data)) == ('TIFF', 30_000, 30_000)
    with pytest.raises(image_decoding.ImageTooLargeError, match='30000x30000 = 900000000 pixels exceeds'):
        image_decoding.decode(bytes(data), InputSpec(size=8, resize=8))
