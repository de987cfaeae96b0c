"""Preprocess pipeline throughput against the encoder alone, on the same photos.

Writes a few hundred photo-sized JPEGs (1024x768, 2-3 captions each) to a
temp folder, then in one run measures:

  encoder only      the encoder's images/s on the decoded crops, batch 64 (the ceiling)
  decode + encode   the same, plus decoding each JPEG (what any pipeline must do)
  pipeline          images/s of the whole preprocess job on the local Beam runner,
                    wall time from start to manifest (startup, tf.Transform and writing included)
  steady state      the pipeline's images/s once started: the extra images over the extra
                    time between a run on the first tenth of the photos and the full run,
                    which cancels the fixed cost (graph building, tf.Transform's analysis,
                    model loading and tracing: about 10 s here)

Target: the pipeline reaches at least 70% of encoder-only throughput.

    .venv/bin/python benchmarks/preprocess.py [--images 400] [--beam-args="--direct_running_mode=multi_processing --direct_num_workers=2"]
"""
import argparse
import json
import os
import shlex
import tempfile
import time

import numpy as np
from PIL import Image

from img2txt.model import encoders
from img2txt.pipelines import image_decoding, preprocess

WORDS = ('red', 'blue', 'green', 'dog', 'cat', 'car', 'tree', 'house', 'man', 'woman', 'beach', 'street')


def write_photos(folder, count, seed=0):
    """``count`` photo-like JPEGs and a JSONL caption file; returns the caption file's path."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        smooth = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(
            (1024, 768), Image.Resampling.BICUBIC)
        grain = rng.normal(0, 4, (768, 1024, 1))
        pixels = np.clip(np.asarray(smooth, np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f'{i:05d}.jpg'), quality=90)
        captions = [' '.join(['a'] + list(rng.choice(WORDS, 6))) for _ in range(int(rng.integers(2, 4)))]
        lines.append(json.dumps({'image': f'{i:05d}.jpg', 'captions': captions,
                                 'split': 'train' if i % 10 else 'val'}))
    path = os.path.join(folder, 'captions.jsonl')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=400)
    parser.add_argument('--beam-args', default='', help='Beam flags for the pipeline run')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        photos = os.path.join(root, 'photos')
        os.makedirs(photos)
        captions = write_photos(photos, args.images)
        paths = sorted(os.path.join(photos, p) for p in os.listdir(photos) if p.endswith('.jpg'))
        print(f'{len(paths)} JPEGs, 1024x768, {sum(os.path.getsize(p) for p in paths) / len(paths) / 1e3:.0f} kB each')

        encoder = encoders.load(batch_size=64)
        spec = encoder.input_spec
        start = time.perf_counter()
        crops = [image_decoding.decode(image_decoding.read_bytes(p), spec) for p in paths]
        decode_s = time.perf_counter() - start
        encoder.features(np.stack(crops[:64]))  # Warm-up: trace and allocate.
        start = time.perf_counter()
        for i in range(0, len(crops), 64):
            encoder.features(np.stack(crops[i:i + 64]))
        encode_s = time.perf_counter() - start
        encoder_only = len(paths) / encode_s
        print(f'encoder only:    {encoder_only:7.1f} images/s   (batch 64)')
        print(f'decode + encode: {len(paths) / (decode_s + encode_s):7.1f} images/s   '
              f'(decode {decode_s / len(paths) * 1000:.1f} ms/image)')

        runs = {}
        for count in (len(paths) // 10, len(paths)):
            subset = os.path.join(root, f'captions-{count}.jsonl')
            with open(captions) as f, open(subset, 'w') as out:
                out.writelines(f.readlines()[:count])
            config = preprocess.PreprocessConfig(dataset='jsonl', captions=subset, images=photos,
                                                 output=os.path.join(root, f'out-{count}'), min_word_count=1)
            start = time.perf_counter()
            result = preprocess.run_config(config, shlex.split(args.beam_args))
            runs[count] = time.perf_counter() - start
            assert result['counts']['images_written'] == count, result['counts']
        (small, small_s), (full, full_s) = sorted(runs.items())
        pipeline = full / full_s
        steady = (full - small) / (full_s - small_s)
        print(f'pipeline:        {pipeline:7.1f} images/s   ({full_s:.1f} s wall for {full}, '
              f'{args.beam_args or "in-process runner"})')
        print(f'steady state:    {steady:7.1f} images/s   ({full - small} more images in {full_s - small_s:.1f} s more '
              f'than a run on {small}: fixed cost {small_s - small / steady:.1f} s)')
        print(f'pipeline / encoder only: {pipeline / encoder_only:.0%} wall, {steady / encoder_only:.0%} steady state '
              f'(target >= 70%)')

if __name__ == '__main__':
    main()
