"""The in-graph decoder against the pipelines' Pillow decoder: same crops."""
import io

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from img2txt.model import graph_decoding
from img2txt.model.input_spec import InputSpec
from img2txt.pipelines import image_decoding


def encoded(image, fmt, **save_args):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


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
        'bmp': encoded(astronaut, 'BMP'),
    }


@pytest.mark.parametrize('spec', [InputSpec(224, 256, 'bicubic'), InputSpec(64, 80, 'bilinear')], ids=str)
def test_in_graph_decoder_matches_the_pipelines_decoder(decoder_cases, spec):
    images = list(decoder_cases.values())
    decoded = tf.function(lambda x: graph_decoding.decode_images(x, spec))(tf.constant(images)).numpy()
    assert decoded.shape == (len(images), spec.size, spec.size, 3) and decoded.dtype == np.uint8
    for name, data, pixels in zip(decoder_cases, images, decoded):
        difference = np.abs(pixels.astype(int) - image_decoding.decode(data, spec))
        # Rounding only: a wrong crop, scale, orientation or background would differ by tens on average.
        assert difference.mean() < 0.5 and difference.max() <= 12, (name, difference.mean(), difference.max())
