"""Decode and encoder throughput: where a captioning pipeline spends its CPU.

For each encoder: ms per image to decode a 12-megapixel JPEG into its input
crop with and without DCT-domain downscaling (draft mode), and its images/s
at several batch sizes, each batch size a network loaded with that
``batch_size`` (the shape it computes in). Full and draft decode are measured
interleaved, and so are the batch sizes (measure.py). Target: draft decode at
least 5x faster than full decode.

    .venv/bin/python benchmarks/decode.py [--encoder efficientnet_lite0 --encoder ...] [--repeats 5]

Default encoders: every ``efficientnet_lite*`` that ``encoders.names()`` knows.
"""
import argparse
import io

import numpy as np
from PIL import Image

import measure
from img2txt.model.networks import encoders
from img2txt.model.serving import image_decoding

BATCH_SIZES = (1, 8, 32, 64)
# Images per encoder sample, so that every batch size's sample lasts long enough to time (batch 1: 64 calls).
IMAGES_PER_SAMPLE = 64
# Draft decodes per sample: one takes about 20 ms, a full decode ten times that.
DRAFT_CALLS = 5


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


def measure_decode(spec, repeats):
    """Prints full and draft decode ms/image into ``spec``'s crop, and their ratio, for two grain levels."""
    for grain in (0.0, 4.0):
        data = photo_jpeg(grain=grain)
        seconds = measure.interleave({
            'full': measure.timed(lambda: image_decoding.decode(data, spec, draft=False)),
            'draft': measure.timed(lambda: image_decoding.decode(data, spec), DRAFT_CALLS),
        }, repeats)
        print(f'  12-megapixel JPEG (4000x3000, {len(data) / 1e6:.1f} MB) -> {spec.size}x{spec.size}')
        print(f'    full decode:  ms/image {measure.summary(seconds["full"], scale=1000)}')
        print(f'    draft decode: ms/image {measure.summary(seconds["draft"], scale=1000)}')
        print(f'    full / draft: {measure.summary(measure.ratios(seconds["full"], seconds["draft"]), unit="x")}'
              f'   (target >= 5x)')


def measure_encoder(name, repeats):
    """Prints ``name``'s images/s at each of ``BATCH_SIZES``."""
    sized = {b: encoders.load(name, batch_size=b) for b in BATCH_SIZES}
    encoder = sized[BATCH_SIZES[0]]
    spec = encoder.input_spec
    print(f'{name}: {encoder.id}, input {spec.size}x{spec.size}, feature dim {encoder.feature_dim}')
    measure_decode(spec, repeats)
    rng = np.random.default_rng(0)
    batches = {b: rng.integers(0, 256, (b, spec.size, spec.size, 3), dtype=np.uint8) for b in BATCH_SIZES}
    seconds = measure.interleave(
        {b: measure.timed(lambda b=b: sized[b].features(batches[b]), max(1, IMAGES_PER_SAMPLE // b))
         for b in BATCH_SIZES}, repeats)
    for b in BATCH_SIZES:
        print(f'  encoder batch {b:3d}: images/s {measure.summary(measure.per_second(seconds[b], b))}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--encoder', action='append', choices=encoders.names(),
                        help='encoder to measure; repeat for several (default: every efficientnet_lite*)')
    parser.add_argument('--repeats', type=int, default=measure.REPEATS, help='interleaved samples per figure')
    args = parser.parse_args()
    # Not argparse's default: 'append' would add the user's choices to it instead of replacing it.
    names = args.encoder or [n for n in encoders.names() if n.startswith('efficientnet_lite')]
    for name in names:
        measure_encoder(name, args.repeats)


if __name__ == '__main__':
    main()
