"""Training throughput: captions/s of the train step, and of the input pipeline alone.

Writes a synthetic preprocess output (random features, COCO-like captions of
8-16 words) to a temporary folder, then measures, interleaved (measure.py):

  - the input pipeline: training batches per second from ``make_dataset``
    with nothing consuming them;
  - training: ``training.train``'s own throughput (after its first step,
    which traces), input pipeline included, at im2txt's sizes; each sample is
    a fresh training run in a fresh folder, so none resumes another.

Target: the input pipeline at least 5x faster than training, so the model,
not the data, sets the pace.

    .venv/bin/python benchmarks/train.py [--steps 30] [--batch-size 32] [--feature-dtype float16] [--repeats 5]
"""
import argparse
import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np

import measure
from img2txt.model import training
from img2txt.model.training import distribution, input_pipeline
from img2txt.model.config import TrainingConfig
from img2txt.schemas import manifest, training_records, training_run, vocabulary


def write_synthetic_data(root, num_images, captions_per_image, feature_dim, vocab_size, feature_dtype, shards=4,
                         seed=0):
    """A preprocess output of random images and captions under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, 'train'))
    for shard in range(shards):
        with open(os.path.join(root, training_records.shard_name('train', shard, shards)), 'wb') as f:
            for i in range(shard, num_images, shards):
                captions = [rng.integers(vocabulary.NUM_RESERVED, vocab_size, rng.integers(8, 17))
                            for _ in range(captions_per_image)]
                f.write(training_records.frame(training_records.encode(
                    f'{i:06d}', rng.normal(size=feature_dim), captions, feature_dtype)))
    tokens = list(vocabulary.RESERVED_TOKENS) + [f'w{i}' for i in range(vocab_size - vocabulary.NUM_RESERVED)]
    with open(os.path.join(root, vocabulary.VOCABULARY_FILE), 'w') as f:
        f.write('\n'.join(tokens) + '\n')
    document = manifest.preprocess_manifest(
        version='benchmark', inputs={}, options={}, counts={}, started_at='', finished_at='', dataset='synthetic',
        encoder={manifest.ENCODER_NAME: 'efficientnet_lite0', manifest.ENCODER_ID: 'synthetic',
                 manifest.ENCODER_FEATURE_DIM: feature_dim},
        feature_dtype=feature_dtype, vocabulary_size=vocab_size, min_word_count=1,
        splits={'train': (num_images, num_images * captions_per_image, shards)})
    with open(os.path.join(root, manifest.FILE_NAME), 'w') as f:
        f.write(manifest.dumps(document))
    return root


def input_captions_per_second(data_dir, batch_size, num_batches):
    """Captions/s of the training input pipeline alone, after a warm-up batch."""
    batches = iter(input_pipeline.make_dataset(data_dir, 'train', batch_size, training=True, num_epochs=None))
    next(batches)
    captions, start = 0, time.perf_counter()
    for _ in range(num_batches):
        _, target_ids = next(batches)
        captions += int(target_ids.shape[0])
    return captions / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=2000)
    parser.add_argument('--captions-per-image', type=int, default=5)
    parser.add_argument('--vocab-size', type=int, default=10000)
    parser.add_argument('--feature-dim', type=int, default=1280)
    parser.add_argument('--feature-dtype', default='float32', choices=training_records.FEATURE_DTYPES)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--embedding-size', type=int, default=512)
    parser.add_argument('--lstm-units', type=int, default=512)
    parser.add_argument('--steps', type=int, default=30, help='training steps to time')
    parser.add_argument('--strategy', choices=distribution.STRATEGIES)
    parser.add_argument('--mixed-precision', action='store_true')
    parser.add_argument('--repeats', type=int, default=measure.REPEATS, help='interleaved samples per figure')
    args = parser.parse_args()
    logging.getLogger('tensorflow').setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = write_synthetic_data(os.path.join(scratch, 'data'), args.images, args.captions_per_image,
                                        args.feature_dim, args.vocab_size, args.feature_dtype)
        model_dir = os.path.join(scratch, 'model')
        config = TrainingConfig(batch_size=args.batch_size, max_steps=args.steps + 1, log_every_steps=10 ** 9,
                                checkpoint_every_steps=10 ** 9)

        def training_captions_per_second():
            shutil.rmtree(model_dir, ignore_errors=True)
            return training.train(data_dir, model_dir, dict(embedding_size=args.embedding_size,
                                                            lstm_units=args.lstm_units), config,
                                  strategy=args.strategy, mixed_precision=args.mixed_precision,
                                  export=False).captions_per_second

        samples = measure.interleave({
            'input': lambda: input_captions_per_second(data_dir, args.batch_size, num_batches=200),
            'training': training_captions_per_second,
        }, args.repeats)
        with open(os.path.join(model_dir, training_run.CONFIG_FILE)) as f:
            run = json.load(f)
        print(f'{args.images} images x {args.captions_per_image} captions, vocabulary {args.vocab_size}, '
              f'{args.feature_dim}-d {args.feature_dtype} features, batch {args.batch_size}; '
              f'{args.repeats} interleaved repeats')
        print(f'  input pipeline: captions/s {measure.summary(samples["input"], digits=0)}')
        print(f'  training:       captions/s {measure.summary(samples["training"], digits=0)}  '
              f'(LSTM {args.lstm_units}, embedding {args.embedding_size}, '
              f'{run[training_run.STRATEGY][training_run.STRATEGY_NAME]}, {run[training_run.PRECISION_POLICY]}, '
              f'{args.steps} steps a run)')
        print(f'  input pipeline / training: '
              f'{measure.summary(measure.ratios(samples["input"], samples["training"]), unit="x")}   (target >= 5x)')

if __name__ == '__main__':
    main()
