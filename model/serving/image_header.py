"""The format and declared size of an image file, read from its header in plain Python.

The Pillow decoder asks this module, not Pillow, whether an image is too
large, so its verdict on a decompression bomb does not change with Pillow's
release (Pillow 12 found a 20000×20000 WebP canvas corrupt, Pillow 13 a
bomb of its own). It reads the same fields as the in-graph decoder's header
reader (``model.serving.graph_decoding``), plus TIFF's, which only Pillow decodes:

- JPEG (and MPO, the phone cameras' multi-picture JPEG): the first
  start-of-frame segment;
- PNG: IHDR;
- GIF: the logical screen and the first image descriptor (giflib allocates
  the larger);
- BMP: the info header (OS/2 core headers' 16-bit fields included);
- WebP: the VP8, VP8L or VP8X (extended: the canvas) chunk;
- TIFF (classic and BigTIFF, either byte order): the first directory's
  ImageWidth and ImageLength, the picture Pillow decodes.

Nothing here allocates more than the header's own bytes.
"""
import struct
import typing

JPEG, PNG, GIF, BMP, WEBP, TIFF = 'JPEG', 'PNG', 'GIF', 'BMP', 'WEBP', 'TIFF'
FORMATS = (JPEG, PNG, GIF, BMP, WEBP, TIFF)


class HeaderError(ValueError):
    """The bytes start as an image format does, but its header is truncated or malformed."""


class Header(typing.NamedTuple):
    """What a file's header declares."""

    format: str
    width: int
    height: int


def sniff(data):
    """The format (one of ``FORMATS``) whose magic bytes ``data`` starts with, or None."""
    if data[:3] == b'\xff\xd8\xff':
        return JPEG
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return PNG
    if data[:6] in (b'GIF87a', b'GIF89a'):
        return GIF
    if data[:2] == b'BM':
        return BMP
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return WEBP
    if data[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'):
        return TIFF
    return None


def read(data):
    """The format and declared size of an image file, from its header alone.

    Args:
      data: the file's bytes (only the header is read).

    Returns:
      A ``Header``, or None when the bytes start as none of ``FORMATS``.

    Raises:
      HeaderError: a known format whose header is cut short or malformed.
    """
    image_format = sniff(data)
    if image_format is None:
        return None
    try:
        width, height = _READERS[image_format](data)
    except (struct.error, IndexError) as e:
        raise HeaderError(f'{image_format} header cut short ({len(data)} bytes)') from e
    return Header(image_format, width, height)


def _jpeg(data):
    # Markers without a length: TEM, RST0-7, SOI, EOI. Start-of-frame markers
    # are C0-CF except DHT (C4), JPG (C8) and DAC (CC).
    position = 2
    while True:
        position = data.find(b'\xff', position)
        if position < 0:
            raise IndexError('no marker')
        while data[position] == 0xFF:  # Fill bytes.
            position += 1
        marker = data[position]
        position += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:
            continue
        if marker == 0xDA:
            raise HeaderError('JPEG has no frame header before its scan data')
        length, = struct.unpack_from('>H', data, position)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from('>HH', data, position + 3)
            return width, height
        if length < 2:
            raise HeaderError(f'JPEG segment {marker:02X} has an impossible length {length}')
        position += length


def _png(data):
    if data[12:16] != b'IHDR':
        raise HeaderError('PNG does not start with its IHDR chunk')
    return struct.unpack_from('>II', data, 16)


def _gif(data):
    screen_width, screen_height, flags = struct.unpack_from('<HHB', data, 6)
    position = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    # Extensions (0x21 label, then sub-blocks) may stand before the first image.
    while data[position] == 0x21:
        position += 2
        while data[position]:
            position += data[position] + 1
        position += 1
    if data[position] != 0x2C:
        raise HeaderError(f'GIF has no image descriptor where one must be (byte {data[position]:#04x})')
    image_width, image_height = struct.unpack_from('<HH', data, position + 5)
    return max(screen_width, image_width), max(screen_height, image_height)


def _bmp(data):
    header_size, = struct.unpack_from('<I', data, 14)
    if header_size == 12:
        return struct.unpack_from('<HH', data, 18)
    width, height = struct.unpack_from('<ii', data, 18)
    return abs(width), abs(height)


def _webp(data):
    chunk = data[12:16]
    if chunk == b'VP8 ':
        width, height = struct.unpack_from('<HH', data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b'VP8L':
        bits, = struct.unpack_from('<I', data, 21)
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    if chunk == b'VP8X':
        # 24-bit little-endian sizes minus one; struct.error when cut short.
        width, = struct.unpack('<I', data[24:27] + b'\x00')
        height, = struct.unpack('<I', data[27:30] + b'\x00')
        return width + 1, height + 1
    raise HeaderError(f'WebP starts with an unknown chunk {bytes(chunk)!r}')


_TIFF_WIDTH, _TIFF_LENGTH = 256, 257
# Field types TIFF stores sizes in: SHORT, LONG and (BigTIFF) LONG8.
_TIFF_INTEGERS = {3: 'H', 4: 'I', 16: 'Q'}


def _tiff(data):
    order = '<' if data[:2] == b'II' else '>'
    big = data[2:4] in (b'+\x00', b'\x00+')
    if big:
        directory, = struct.unpack_from(order + 'Q', data, 8)
        count_format, entry_format, entry_size = 'Q', 'HHQ', 20
    else:
        directory, = struct.unpack_from(order + 'I', data, 4)
        count_format, entry_format, entry_size = 'H', 'HHI', 12
    count, = struct.unpack_from(order + count_format, data, directory)
    entries = directory + struct.calcsize(order + count_format)
    sizes = {}
    for index in range(count):
        position = entries + index * entry_size
        tag, field_type, _ = struct.unpack_from(order + entry_format, data, position)
        if tag in (_TIFF_WIDTH, _TIFF_LENGTH) and field_type in _TIFF_INTEGERS:
            value_at = position + struct.calcsize(order + entry_format)
            sizes[tag], = struct.unpack_from(order + _TIFF_INTEGERS[field_type], data, value_at)
    if len(sizes) < 2:
        raise HeaderError('TIFF first directory has no ImageWidth and ImageLength')
    return sizes[_TIFF_WIDTH], sizes[_TIFF_LENGTH]


_READERS = {JPEG: _jpeg, PNG: _png, GIF: _gif, BMP: _bmp, WEBP: _webp, TIFF: _tiff}
