"""Batched beam search throughput: images/s at batch 1 and 64.

Beam 3, max length 20, vocabulary 10k, LSTM and embedding 512, 1280-d
features (im2txt's sizes), inside a ``tf.function`` with a dynamic batch as
the export runs it; warm-up excluded. Weights are random, so every caption
runs all 20 steps (a trained model stops earlier): a worst case. Batch sizes
are interleaved and the best of several rounds kept, so a busy machine skews
both alike. Target: batch 64 at least 10x the images/s of batch 1.

    .venv/bin/python benchmarks/beam.py [--rounds 5]
"""
import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from img2txt.model.beam_search import beam_search
from img2txt.model.config import ModelConfig
from img2txt.model.show_and_tell import ShowAndTell

BATCH_SIZES = (1, 64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    config = ModelConfig(vocab_size=10000, feature_dim=1280)
    model = ShowAndTell(config)
    search = tf.function(lambda f: beam_search(model, f, config.beam_size, config.max_caption_length),
                         input_signature=[tf.TensorSpec([None, config.feature_dim], tf.float32)])
    rng = np.random.default_rng(0)
    inputs = {b: tf.constant(rng.normal(size=(b, config.feature_dim)).astype(np.float32)) for b in BATCH_SIZES}
    for features in inputs.values():
        search(features)
    best = {b: float('inf') for b in BATCH_SIZES}
    for _ in range(args.rounds):
        for b, features in inputs.items():
            repeats = 20 if b == 1 else 2
            start = time.perf_counter()
            for _ in range(repeats):
                search(features)
            best[b] = min(best[b], (time.perf_counter() - start) / repeats)
    print(f'beam {config.beam_size}, max length {config.max_caption_length}, vocab {config.vocab_size}, '
          f'LSTM {config.lstm_units}')
    for b in BATCH_SIZES:
        print(f'  batch {b:3d}: {b / best[b]:7.1f} images/s  ({1000 * best[b]:7.1f} ms per batch)')
    ratio = (BATCH_SIZES[1] / best[BATCH_SIZES[1]]) / (1 / best[1])
    print(f'  batch {BATCH_SIZES[1]} / batch 1: {ratio:.1f}x   (target >= 10x)')


if __name__ == '__main__':
    main()
