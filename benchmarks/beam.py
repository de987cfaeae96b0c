"""Batched beam search throughput: images/s at batch 1 and 64.

Beam 3, max length 20, vocabulary 10k, LSTM and embedding 512, 1280-d
features (im2txt's sizes), inside a ``tf.function`` with a dynamic batch as
the export runs it. Weights are random, so every caption runs all 20 steps
(a trained model stops earlier): a worst case. The batch sizes are measured
interleaved (measure.py), and the ratio round by round. Target: batch 64 at
least 10x the images/s of batch 1.

    .venv/bin/python benchmarks/beam.py [--repeats 5]
"""
import argparse

import keras
import numpy as np
import tensorflow as tf

import measure
from img2txt.model.networks.show_and_tell import ShowAndTell, ShowAndTellConfig
from img2txt.model.serving.beam_search import beam_search

BATCH_SIZES = (1, 64)
# Calls per sample: batch 1 takes milliseconds, too short for one timer reading to mean much.
CALLS = {1: 20, 64: 2}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=measure.REPEATS, help='interleaved samples per figure')
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    config = ShowAndTellConfig(vocab_size=10000, feature_dim=1280)
    model = ShowAndTell(config)
    search = tf.function(lambda f: beam_search(model, f, config.beam_size, config.max_caption_length),
                         input_signature=[tf.TensorSpec([None, config.feature_dim], tf.float32)])
    rng = np.random.default_rng(0)
    inputs = {b: tf.constant(rng.normal(size=(b, config.feature_dim)).astype(np.float32)) for b in BATCH_SIZES}
    seconds = measure.interleave(
        {b: measure.timed(lambda features=features: search(features), CALLS[b]) for b, features in inputs.items()},
        args.repeats)
    rates = {b: measure.per_second(seconds[b], b) for b in BATCH_SIZES}
    print(f'beam {config.beam_size}, max length {config.max_caption_length}, vocab {config.vocab_size}, '
          f'LSTM {config.lstm_units}; {args.repeats} interleaved repeats')
    for b in BATCH_SIZES:
        print(f'  batch {b:3d}: images/s {measure.summary(rates[b])}; '
              f'ms per batch {measure.summary(seconds[b], scale=1000)}')
    small, large = BATCH_SIZES
    speedup = measure.ratios(rates[large], rates[small])
    print(f'  batch {large} / batch {small} images/s: {measure.summary(speedup, unit="x")}   (target >= 10x)')


if __name__ == '__main__':
    main()
