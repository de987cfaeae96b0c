"""The Beam step around the Pillow decoder: every file ends as its image or an error record naming it."""
import hashlib

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from captioner_data import encoded
from img2txt.model.input_spec import InputSpec
from img2txt.pipelines.decode_images import DecodeImages

SPEC = InputSpec(size=32, resize=40)
RED = (255, 0, 0)


def test_decode_images_routes_failures_to_error_records(tmp_path):
    good = tmp_path / 'good.webp'
    good.write_bytes(encoded(Image.new('RGB', (50, 50), RED), 'WEBP', lossless=True))
    broken = tmp_path / 'broken.jpg'
    photo = encoded(Image.effect_noise((200, 200), 50).convert('RGB'), 'JPEG')
    broken.write_bytes(photo[:len(photo) // 3])
    missing = tmp_path / 'missing.png'
    with TestPipeline() as p:
        outputs = (p | beam.Create([('a', str(good)), ('b', str(broken)), ('c', str(missing))])
                   | DecodeImages(SPEC))
        colours = outputs.images | beam.MapTuple(
            lambda key, image: (key, tuple(image.pixels[16, 16].tolist()), image.width, image.sha256))
        assert_that(colours, equal_to([('a', RED, 50, hashlib.sha256(good.read_bytes()).hexdigest())]),
                    label='CheckImages')
        reasons = outputs.errors | beam.MapTuple(lambda key, e: (key, e['stage'], e['input'], e['error_type']))
        assert_that(reasons, equal_to([('b', 'decode', str(broken), 'CorruptImageError'),
                                       ('c', 'read', str(missing), 'FileNotFoundError')]), label='CheckErrors')


def test_decode_images_keeps_every_image_with_its_key_through_the_thread_pool(tmp_path):
    expected, expected_errors, elements = [], [], []
    for i in range(40):
        path = tmp_path / f'{i}.png'
        if i % 7 == 3:
            path.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
            expected_errors.append(str(path))
        else:
            path.write_bytes(encoded(Image.new('RGB', (40, 40), (i, 2 * i, 3 * i)), 'PNG'))
            expected.append((f'k{i}', (i, 2 * i, 3 * i)))
        elements.append((f'k{i}', str(path)))
    with TestPipeline() as p:
        outputs = p | beam.Create(elements) | DecodeImages(SPEC, threads=3, window=4)
        colours = outputs.images | beam.MapTuple(lambda key, image: (key, tuple(image.pixels[5, 5].tolist())))
        assert_that(colours, equal_to(expected), label='CheckImages')
        assert_that(outputs.errors | beam.MapTuple(lambda key, e: e['input']), equal_to(expected_errors),
                    label='CheckErrors')
