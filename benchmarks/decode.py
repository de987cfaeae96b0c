"""Decode and encoder throughput: where a captioning pipeline spends its CPU.

Prints ms per image to decode a 12-megapixel JPEG with and without DCT-domain
downscaling (draft mode), and the encoder's images/s at several batch sizes.
Target: draft decode at least 5x faster than full decode.

    .venv/bin/python benchmarks/decode.py [--encoder efficientnet_lite0] [--repeats 20]
"""
import argparse
import io
import time

import numpy as np
from PIL import Image

from img2txt.model import encoders
from img2txt.pipelines import image_decoding


def photo_jpeg(width=4000, height=3000, seed=0, grain=4.0):
    """A photo-like 12-megapixel JPEG, quality 90: smooth colour fields plus sensor-like grain.

    Grain decides the file size (0: 0.8 MB; 4: 2.7 MB, like a phone photo),
    and the file size decides the part of decoding no downscale can skip:
    entropy-decoding every DCT coefficient.
    """
    rng = np.random.default_rng(seed)
    smooth = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC)
    noise = rng.normal(0, grain, (height, width, 1))
    pixels = np.clip(np.asarray(smooth, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'JPEG', quality=90)
    return buffer.getvalue()


def ms_per_call(fn, repeats):
    fn()  # Warm-up.
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--encoder', default=encoders.DEFAULT, choices=encoders.names())
    parser.add_argument('--repeats', type=int, default=20)
    args = parser.parse_args()

    encoder = encoders.load(args.encoder)
    spec = encoder.input_spec
    for grain in (0.0, 4.0):
        data = photo_jpeg(grain=grain)
        print(f'12-megapixel JPEG (4000x3000, {len(data) / 1e6:.1f} MB) -> {spec.size}x{spec.size}')
        full = ms_per_call(lambda: image_decoding.decode(data, spec, draft=False), max(3, args.repeats // 4))
        draft = ms_per_call(lambda: image_decoding.decode(data, spec), args.repeats)
        print(f'  full decode:  {full:7.1f} ms/image')
        print(f'  draft decode: {draft:7.1f} ms/image   ({full / draft:.1f}x faster; target >= 5x)')

    print(f'encoder {encoder.id} (feature dim {encoder.feature_dim})')
    rng = np.random.default_rng(0)
    for batch_size in (1, 8, 32, 64):
        # The encoder computes in fixed batches of its batch_size: one network per size measured.
        sized = encoders.load(args.encoder, batch_size=batch_size)
        batch = rng.integers(0, 256, (batch_size, spec.size, spec.size, 3), dtype=np.uint8)
        ms = ms_per_call(lambda: sized.features(batch), max(3, args.repeats * 2 // batch_size))
        print(f'  batch {batch_size:3d}: {batch_size / ms * 1000:7.1f} images/s  ({ms:7.1f} ms/batch)')


if __name__ == '__main__':
    main()
