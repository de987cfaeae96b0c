"""The Pillow image decoder: every format, mode and failure a photo collection brings."""
import io
import random

import numpy as np
import pytest
from PIL import Image

from captioner_data import encoded, png_declaring
from img2txt.model import storage
from img2txt.model.serving import image_decoding
from img2txt.model.serving.image_decoding import (CorruptImageError, EmptyImageError, ImageDecodeError, ImageTooLargeError,
                                          NotAnImageError, UnsupportedFormatError, decode)
from img2txt.model.input_spec import InputSpec

SPEC = InputSpec(size=32, resize=40)
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def two_halves(size, first, second, vertical=True):
    """An RGB image split into two colours: top/bottom if vertical, else left/right."""
    width, height = size
    image = Image.new('RGB', size, first)
    box = (0, height // 2, width, height) if vertical else (width // 2, 0, width, height)
    image.paste(second, box)
    return image


def assert_colour(pixels, colour, tolerance=12):
    assert np.abs(pixels.reshape(-1, 3).astype(int) - colour).max() <= tolerance, pixels.reshape(-1, 3)[:3]


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'GIF', 'WEBP', 'BMP', 'TIFF'])
def test_every_supported_format_decodes_to_the_crop(fmt):
    image = two_halves((80, 60), RED, BLUE, vertical=False)
    pixels = decode(encoded(image, fmt), SPEC)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    assert_colour(pixels[:, :10], RED, tolerance=40)
    assert_colour(pixels[:, -10:], BLUE, tolerance=40)


def test_squash_keeps_the_whole_photo_where_crop_keeps_its_centre():
    # A panorama in thirds, red | green | blue: the crop sees green only, the squash all three, stretched.
    image = Image.new('RGB', (300, 100), GREEN)
    image.paste(RED, (0, 0, 100, 100))
    image.paste(BLUE, (200, 0, 300, 100))
    data = encoded(image, 'PNG')
    assert_colour(decode(data, SPEC), GREEN)
    squashed = decode(data, InputSpec(size=30, resize=40, resize_mode='squash'))
    assert squashed.shape == (30, 30, 3)
    assert_colour(squashed[:, :8], RED)
    assert_colour(squashed[:, 12:18], GREEN)
    assert_colour(squashed[:, -8:], BLUE)


def test_draft_size_is_the_least_a_jpeg_may_shrink_to():
    assert InputSpec(224, 256).draft_size(4000, 3000) == (342, 256)
    assert InputSpec(224, 256).draft_size(300, 256) is None
    assert InputSpec(224, 256, resize_mode='squash').draft_size(4000, 3000) == (224, 224)
    assert InputSpec(224, 256, resize_mode='squash').draft_size(224, 3000) is None
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        InputSpec(224, 256, resize_mode='stretch')


@pytest.mark.parametrize('orientation, left, right', [
    (1, None, None),  # Stored as displayed: red top, blue bottom.
    (3, None, None),  # Rotated 180°: blue top, red bottom.
    (6, BLUE, RED),   # Rotate 90° clockwise to display: the stored top becomes the right side.
    (8, RED, BLUE),   # Rotate 90° counter-clockwise: the stored top becomes the left side.
])
def test_exif_orientation_is_applied(orientation, left, right):
    image = two_halves((120, 80), RED, BLUE)
    exif = Image.Exif()
    exif[0x0112] = orientation
    pixels = decode(encoded(image, 'JPEG', exif=exif, quality=95), SPEC)
    if left is None:
        top, bottom = (RED, BLUE) if orientation == 1 else (BLUE, RED)
        assert_colour(pixels[:8], top)
        assert_colour(pixels[-8:], bottom)
    else:
        assert_colour(pixels[:, :8], left)
        assert_colour(pixels[:, -8:], right)


def test_greyscale_becomes_three_equal_channels():
    pixels = decode(encoded(Image.new('L', (50, 50), 90), 'PNG'), SPEC)
    assert (pixels == 90).all()


def test_bilevel_image():
    pixels = decode(encoded(Image.new('1', (50, 50), 1), 'BMP'), SPEC)
    assert (pixels == 255).all()


def test_cmyk_jpeg_gives_rgb_colours():
    cmyk_red = Image.new('CMYK', (60, 60), (0, 255, 255, 0))
    assert_colour(decode(encoded(cmyk_red, 'JPEG', quality=95), SPEC), RED, tolerance=20)


@pytest.mark.parametrize('fmt', ['PNG', 'TIFF'])
def test_16_bit_greyscale_is_scaled_not_clipped(fmt):
    image = Image.fromarray(np.full((50, 50), 40000, np.uint16))
    assert image.mode == 'I;16'
    pixels = decode(encoded(image, fmt), SPEC)
    assert (pixels == 40000 >> 8).all()


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new('P', (50, 50), 1)
    image.putpalette([0, 0, 0] + list(BLUE) + [0] * 762)
    image.paste(0, (0, 0, 25, 50))
    pixels = decode(encoded(image, 'PNG', transparency=0), SPEC)
    assert_colour(pixels[:, :8], (255, 255, 255), tolerance=0)
    assert_colour(pixels[:, -8:], BLUE, tolerance=0)


def test_alpha_is_composited_on_white():
    image = Image.new('RGBA', (50, 50), (0, 255, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, 50, 25))
    pixels = decode(encoded(image, 'PNG'), SPEC)
    assert_colour(pixels[:8], (255, 255, 255), tolerance=0)
    assert_colour(pixels[-8:], GREEN, tolerance=0)


@pytest.mark.parametrize('fmt', ['GIF', 'WEBP', 'PNG'])
def test_animated_image_gives_its_first_frame(fmt):
    frames = [Image.new('RGB', (50, 50), RED), Image.new('RGB', (50, 50), BLUE)]
    data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0,
                   **({'lossless': True} if fmt == 'WEBP' else {}))
    assert getattr(Image.open(io.BytesIO(data)), 'n_frames', 1) == 2
    assert_colour(decode(data, SPEC), RED, tolerance=0)


def test_centre_crop_of_a_panorama():
    # 400x40 at short side 40 stays 400x40; the 40-wide centre window holds both colours.
    image = two_halves((400, 40), GREEN, BLUE, vertical=False)
    pixels = decode(encoded(image, 'PNG'), InputSpec(size=40, resize=40))
    assert_colour(pixels[:, :15], GREEN, tolerance=0)
    assert_colour(pixels[:, -15:], BLUE, tolerance=0)


def test_extreme_aspect_ratio_does_not_blow_up():
    pixels = decode(encoded(Image.new('RGB', (20000, 2), RED), 'PNG'), InputSpec(size=224, resize=256))
    assert pixels.shape == (224, 224, 3)
    assert_colour(pixels, RED, tolerance=0)


def test_small_images_are_upscaled():
    assert decode(encoded(Image.new('RGB', (3, 5), BLUE), 'PNG'), SPEC).shape == (32, 32, 3)


def test_large_jpeg_draft_decode_matches_a_full_decode():
    rng = np.random.default_rng(0)
    # Smooth content (a photo, not noise): upsampled random blocks.
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC)
    data = encoded(photo, 'JPEG', quality=90)
    spec = InputSpec(size=224, resize=256)
    drafted = decode(data, spec).astype(int)
    full = Image.open(io.BytesIO(data)).convert('RGB')
    window = 224 * 3000 / 256
    reference = np.asarray(full.resize((224, 224), Image.Resampling.BICUBIC,
                                       box=((4000 - window) / 2, (3000 - window) / 2,
                                            (4000 + window) / 2, (3000 + window) / 2))).astype(int)
    assert np.abs(drafted - reference).mean() < 2.0


def test_format_is_sniffed_not_taken_from_the_extension(tmp_path):
    path = tmp_path / 'really_a_png.jpg'
    path.write_bytes(encoded(Image.new('RGB', (50, 50), GREEN), 'PNG'))
    assert_colour(decode(storage.read_bytes(str(path)), SPEC), GREEN, tolerance=0)


def test_file_named_like_a_compressed_archive_is_not_decompressed(tmp_path):
    path = tmp_path / 'photo.gz'
    path.write_bytes(encoded(Image.new('RGB', (50, 50), GREEN), 'PNG'))
    assert_colour(decode(storage.read_bytes(str(path)), SPEC), GREEN, tolerance=0)


def test_empty_input():
    with pytest.raises(EmptyImageError, match='empty'):
        decode(b'', SPEC)


def test_not_an_image():
    with pytest.raises(NotAnImageError, match='not an image'):
        decode(b'{"caption": "a json file, not a photo"}', SPEC)


@pytest.mark.parametrize('data, kind', [
    (b'\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic' + bytes(64), 'HEIC'),
    (b'\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1' + bytes(64), 'AVIF'),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', 'SVG'),
    (b'<svg width="10" height="10"></svg>', 'SVG'),
])
def test_image_formats_pillow_cannot_read_are_named(data, kind):
    with pytest.raises(UnsupportedFormatError, match=f'^{kind}.* not supported'):
        decode(data, SPEC)


def test_decode_image_gives_the_size_as_shown():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    decoded = image_decoding.decode_image(encoded(two_halves((120, 80), RED, BLUE), 'JPEG', exif=exif), SPEC)
    assert (decoded.width, decoded.height) == (80, 120)
    assert decoded.pixels.shape == (32, 32, 3)


@pytest.mark.parametrize('fmt', ['ICO', 'PCX', 'PPM'])
def test_recognised_but_unsupported_format(fmt):
    with pytest.raises(UnsupportedFormatError, match=f'unsupported image format {fmt}'):
        decode(encoded(Image.new('RGB', (32, 32), RED), fmt), SPEC)


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'WEBP'])
def test_truncated_image(fmt):
    data = encoded(Image.effect_noise((200, 200), 50).convert('RGB'), fmt)
    with pytest.raises(CorruptImageError, match=f'{fmt}|header'):
        decode(data[:len(data) // 2], SPEC)


def test_corrupt_png_checksum():
    data = bytearray(encoded(Image.effect_noise((64, 64), 50).convert('RGB'), 'PNG'))
    idat = data.index(b'IDAT')
    data[idat + 20] ^= 0xFF
    with pytest.raises(CorruptImageError):
        decode(bytes(data), SPEC)


@pytest.mark.parametrize('side', [20_000, 60_000])  # Below and above Pillow's own bomb limit.
def test_decompression_bomb_is_refused_from_the_header(side):
    with pytest.raises(ImageTooLargeError, match='decompression bomb'):
        decode(png_declaring(side, side), SPEC)


def test_pixel_limit_is_configurable():
    data = encoded(Image.new('RGB', (200, 100)), 'PNG')
    assert decode(data, SPEC, max_pixels=20_000).shape == (32, 32, 3)
    with pytest.raises(ImageTooLargeError, match='200x100 = 20000 pixels exceeds the limit of 19999'):
        decode(data, SPEC, max_pixels=19_999)


def test_mutated_bytes_never_escape_as_anything_but_a_decode_error():
    rng = random.Random(7)
    seeds = [encoded(Image.effect_noise((96, 64), 60).convert('RGB'), fmt) for fmt in ('JPEG', 'PNG', 'GIF', 'WEBP')]
    outcomes = {'decoded': 0, 'refused': 0}
    for i in range(400):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(1, len(data))]
        try:
            assert decode(bytes(data), SPEC).shape == (32, 32, 3)
            outcomes['decoded'] += 1
        except ImageDecodeError:
            outcomes['refused'] += 1
    assert outcomes['decoded'] > 0 and outcomes['refused'] > 0, outcomes
