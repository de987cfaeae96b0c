"""Caption pipeline throughput on 12-megapixel photos, against the compute bound and a naive loop; peak memory.

Writes a few distinct 12-megapixel JPEGs (phone-photo sized, decode.py's
``photo_jpeg``) and links them under many names, exports a captioner of
im2txt's size (EfficientNet-Lite0 + LSTM 512, vocabulary 10,000, beam 3,
untrained: decoding cost does not depend on what was learnt), then measures,
interleaved in rounds (measure.py):

  pipeline        marginal images/s of ``img2txt caption`` on the local Beam runner:
                  (N - N/5) images over the extra time of a run on N over a run on N/5
                  in the same round, which cancels start-up (model load, graph build)
  compute bound   a tight in-process loop over the same N photos, no Beam: draft decode
                  on a thread pool, then the captioner in its fixed batches
  naive           im2txt's run_inference: one photo at a time, full decode, one model
                  call per photo (on fewer photos: it is slow)

and, each in a fresh process, the peak RSS of the pipeline on 200 and 2,000
photos. Targets: pipeline >= 75% of the compute bound and >= 10x the naive
loop; peak RSS at 2,000 photos within 15% of that at 200.

    .venv/bin/python benchmarks/caption.py [--images 200] [--naive-images 16] [--repeats 5] [--no-memory]
"""
import argparse
import concurrent.futures
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np

import measure
from decode import photo_jpeg
from img2txt.model import storage
from img2txt.model.networks import encoders
from img2txt.model.networks.show_and_tell import ShowAndTell, ShowAndTellConfig
from img2txt.model.serving import export, image_decoding
from img2txt.model.serving.captioner import Captioner
from img2txt.pipelines import caption
from img2txt.schemas import manifest, vocabulary

DISTINCT_PHOTOS = 8


def write_sources(folder):
    """DISTINCT_PHOTOS 12-megapixel JPEGs of varied grain (0.8 to 2.7 MB) in ``folder``; their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for seed in range(DISTINCT_PHOTOS):
        paths.append(os.path.join(folder, f'source-{seed}.jpg'))
        with open(paths[-1], 'wb') as f:
            f.write(photo_jpeg(seed=seed, grain=float(seed % 5)))
    return paths


def link_photos(sources, folder, count):
    """``count`` photo paths in ``folder``: hard links to ``sources`` in turn (no disk for 2,000 photos)."""
    os.makedirs(folder)
    paths = [os.path.join(folder, f'photo-{i:05d}.jpg') for i in range(count)]
    for i, path in enumerate(paths):
        os.link(sources[i % len(sources)], path)
    return paths


def export_model(export_dir):
    """An im2txt-sized captioner (random weights) exported to ``export_dir``."""
    keras.utils.set_random_seed(0)
    config = ShowAndTellConfig(vocab_size=10_000, feature_dim=1280)
    model = ShowAndTell(config)
    model((np.zeros((1, config.feature_dim), np.float32), np.zeros((1, 2), np.int32)))
    vocab = [*vocabulary.RESERVED_TOKENS, *(f'w{i}' for i in range(config.vocab_size - vocabulary.NUM_RESERVED))]
    return export.export_captioner(model, config, encoders.DEFAULT, vocab, export_dir)


def pipeline_seconds(model_dir, folder, output, beam_args):
    """Wall seconds of one caption run over the photos of ``folder``, checking that it captioned them all."""
    start = time.perf_counter()
    result = caption.run_config(caption.CaptionConfig(model=model_dir, input=[os.path.join(folder, '*.jpg')],
                                                      output=output), beam_args)
    seconds = time.perf_counter() - start
    counts = result[manifest.COUNTS]
    assert counts[manifest.CAPTIONED] == counts[manifest.MATCHED], counts
    return seconds


def compute_bound(captioner, paths, pool):
    """Seconds to caption ``paths`` with no Beam: threaded draft decode, then fixed-batch inference."""
    def load(path):
        return image_decoding.decode(storage.read_bytes(path), captioner.input_spec)
    start = time.perf_counter()
    crops = np.stack(list(pool.map(load, paths)))
    captioner.caption(crops)
    return time.perf_counter() - start


def naive(captioner_one, paths):
    """Seconds to caption ``paths`` one at a time with a full decode, as im2txt's run_inference did."""
    start = time.perf_counter()
    for path in paths:
        crop = image_decoding.decode(storage.read_bytes(path), captioner_one.input_spec, draft=False)
        captioner_one.caption(crop[None])
    return time.perf_counter() - start


def peak_rss_mb(model_dir, images, scratch):
    """Peak RSS (MB) of a fresh process that runs the caption pipeline over ``images`` photos (scratch/sources)."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), '--rss-run', str(images), '--model', model_dir,
                          '--scratch', scratch], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def rss_run(images, model_dir, scratch):
    """In a fresh process: caption ``images`` photos, then print this process's peak RSS in MB."""
    folder = os.path.join(scratch, f'rss-{images}')
    link_photos(sorted(os.path.join(scratch, 'sources', name) for name in os.listdir(os.path.join(scratch, 'sources'))),
                folder, images)
    pipeline_seconds(model_dir, folder, os.path.join(scratch, f'rss-out-{images}'), [])
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=200, help='photos per pipeline and compute-bound sample')
    parser.add_argument('--naive-images', type=int, default=16, help='photos per naive sample')
    parser.add_argument('--repeats', type=int, default=measure.REPEATS, help='interleaved samples per figure')
    parser.add_argument('--memory', action=argparse.BooleanOptionalAction, default=True,
                        help='also measure peak RSS on 200 and 2,000 photos (a few minutes)')
    parser.add_argument('--beam-args', default='', help='Beam flags for the pipeline runs')
    parser.add_argument('--rss-run', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--model', help=argparse.SUPPRESS)
    parser.add_argument('--scratch', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_run:
        return rss_run(args.rss_run, args.model, args.scratch)

    with tempfile.TemporaryDirectory(prefix='img2txt-bench-caption-') as scratch:
        sources = write_sources(os.path.join(scratch, 'sources'))
        folder = os.path.join(scratch, 'photos')
        paths = link_photos(sources, folder, args.images)
        small = max(1, args.images // 5)
        small_folder = os.path.join(scratch, 'photos-small')
        link_photos(sources, small_folder, small)
        print(f'{args.images} 12-megapixel JPEGs ({DISTINCT_PHOTOS} distinct, '
              f'{np.mean([os.path.getsize(p) for p in sources]) / 1e6:.1f} MB on average)')
        model_dir = os.path.join(scratch, 'model')
        model_id = export_model(model_dir)
        captioner = Captioner.load(model_dir)
        captioner_one = Captioner.load(model_dir, batch_size=1)
        runs = iter(range(10 ** 6))
        beam_args = args.beam_args.split()
        pool = concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1))

        def run(photos):
            return lambda: pipeline_seconds(model_dir, photos, os.path.join(scratch, f'out-{next(runs)}'), beam_args)

        seconds = measure.interleave({
            'small': run(small_folder),
            'full': run(folder),
            'bound': lambda: compute_bound(captioner, paths, pool),
            'naive': lambda: naive(captioner_one, paths[:args.naive_images]),
        }, args.repeats)
        marginal = [(args.images - small) / (full - part) for full, part in zip(seconds['full'], seconds['small'])]
        bound = measure.per_second(seconds['bound'], args.images)
        slow = measure.per_second(seconds['naive'], args.naive_images)
        print(f'captioner {model_id}: LSTM 512, vocabulary 10000, beam 3, batch {captioner.batch_size}; '
              f'{args.repeats} interleaved repeats')
        startup = [full - args.images / rate for full, rate in zip(seconds['full'], marginal)]
        print(f'  pipeline (marginal): images/s {measure.summary(marginal)}; start-up s {measure.summary(startup)}')
        print(f'  pipeline (wall, {args.images} photos): images/s '
              f'{measure.summary(measure.per_second(seconds["full"], args.images))}')
        print(f'  compute bound:       images/s {measure.summary(bound)}')
        print(f'  naive loop:          images/s {measure.summary(slow)}')
        print(f'  pipeline / compute bound: {measure.summary(measure.ratios(marginal, bound), scale=100, unit="%")}'
              '   (target >= 75%)')
        print(f'  pipeline / naive:         {measure.summary(measure.ratios(marginal, slow), unit="x")}'
              '   (target >= 10x)')
        if args.memory:
            rss = {n: peak_rss_mb(model_dir, n, scratch) for n in (200, 2000)}
            print(f'  peak RSS: {rss[200]:.0f} MB for 200 photos, {rss[2000]:.0f} MB for 2000 photos '
                  f'({(rss[2000] / rss[200] - 1) * 100:+.1f}%; target within 15%)')


if __name__ == '__main__':
    main()
