"""Show and Tell against soft attention on the demo's scenes: which decoder names every object right, at what cost.

Generates the demo's scenes (``pipelines/datasets/scenes.py``: one or two coloured shapes,
six colour-shape pairs never in train or val), preprocesses them once per
spatial map, then trains each decoder with the demo's budget
(``jobs.demo.training_options``: Adam, batch 128, LSTM 256, 24 epochs; for
attention the demo's options, attention units 128 and the context fed to the
output layer only, ``--no-inject-context``) on the same records:

  show_and_tell        the pooled 1280-d vector, read once
  attention/head       soft attention over the head map (7x7x1280 for Lite0)
  attention/stride16   soft attention over the stride-16 map (14x14x240): the demo's

First, why two maps: a linear probe (softmax regression on the map's mean)
learns the colour of the single-shape train scenes from each map and names
the colour of the single-shape test scenes, seen pairs and held-out pairs.

Each is trained once per seed (``--seeds``) and evaluated on the test split
(``img2txt evaluate``'s metrics): BLEU-4, CIDEr-D and the share of captions
naming every object right ("mentions right"), on the scenes of seen pairs and
on those showing a held-out pair; the figures are the median over seeds with
min and max, as is training's captions/s. Then the caption pipeline's
marginal images/s (as ``caption.py`` takes it: a run over ``--images``
photos against one over a fifth of them, which cancels start-up) of each
seed-0 export on the same photos, the test scenes, interleaved in rounds
(``measure.py``).

Targets (the issue's): the better decoder on held-out pairs names every
object right in >= 50% of held-out-pair captions and >= 90% of seen-pair
ones, with whole-test BLEU-4 at least Show and Tell's; its caption pipeline
>= 70% of Show and Tell's images/s.

    .venv/bin/python benchmarks/decoders.py [--seeds 3] [--scenes 2000] [--epochs 24] [--images 1000] [--repeats 5]

About 25 minutes per seed, and 10 for the caption pipeline, on 2 CPU cores.
"""
import argparse
import itertools
import json
import os
import statistics
import tempfile

import keras
import numpy as np

import measure
from caption import link_photos, pipeline_seconds
from img2txt.jobs import demo
from img2txt.pipelines.datasets import scenes
from img2txt.model import storage, training
from img2txt.model.networks import encoders
from img2txt.model.serving import image_decoding
from img2txt.pipelines import evaluate, preprocess
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import evaluation

BLEU_4 = evaluation.BLEU[3]
# (label, decoder, spatial layer of the records it trains on, attention options besides the demo's).
CANDIDATES = (
    ('show_and_tell', decoder_names.SHOW_AND_TELL, 'head', {}),
    ('attention/head', decoder_names.ATTENTION, 'head', {}),
    ('attention/stride16', decoder_names.ATTENTION, 'stride16', {}),
)


def preprocessed(workdir, captions, images, spatial_layer):
    """The scenes' records with ``spatial_layer``'s maps (made once per layer)."""
    data = os.path.join(workdir, f'data-{spatial_layer}')
    if not os.path.exists(data):
        preprocess.run_config(preprocess.PreprocessConfig(
            dataset='jsonl', captions=captions, images=images, output=data, spatial_features=True,
            spatial_layer=spatial_layer), [])
    return data


def colour_probe(captions, images, spatial_layer):
    """Share of single-shape test scenes whose colour a linear probe of the map's mean names: {subset: share}."""
    encoder = encoders.load(spatial_layer=spatial_layer)
    with open(captions, encoding='utf-8') as f:
        records = [r for r in map(json.loads, f) if len(r['mentions']) == 1]
    pixels = np.stack([image_decoding.decode(storage.read_bytes(os.path.join(images, r['image'])),
                                             encoder.input_spec) for r in records])
    means = encoder.spatial_features(pixels).mean(axis=(1, 2))
    colours = np.array([list(scenes.COLOURS).index(r['mentions'][0].split()[0]) for r in records])
    train = np.array([r['split'] == 'train' for r in records])
    mean, std = means[train].mean(0), means[train].std(0) + 1e-3
    keras.utils.set_random_seed(0)
    probe = keras.Sequential([keras.layers.Dense(len(scenes.COLOURS),
                                                 kernel_regularizer=keras.regularizers.l2(1e-3))])
    probe.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    probe.fit((means[train] - mean) / std, colours[train], epochs=100, batch_size=64, verbose=0)
    named = probe.predict((means - mean) / std, verbose=0).argmax(-1) == colours
    subsets = np.array([r.get('subset', '') for r in records])
    return {subset: (float(named[subsets == subset].mean()), int((subsets == subset).sum()))
            for subset in (scenes.SEEN, scenes.HELD_OUT_SUBSET)}


def train_and_evaluate(data, model_dir, decoder, options, args, seed):
    """Trains with the demo's budget and evaluates the test split; (TrainResult, metrics.json document)."""
    model_options, training_config = demo.training_options(decoder, args.lstm_units, args.epochs, seed, options)
    trained = training.train(data, model_dir, model_options, training_config, decoder=decoder, log=lambda line: None)
    metrics = evaluate.run_config(evaluate.EvaluateConfig(model=trained.export_dir, output=model_dir + '-evaluation',
                                                          data=data, meteor=False), [])
    return trained, metrics


def figure(metrics, subset, name):
    """One metric of one subset (``evaluation.ALL``: the whole split) of an evaluate document."""
    return metrics[evaluation.SUBSETS][subset][name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=3, help='training runs per decoder (seeds 0..N-1)')
    parser.add_argument('--scenes', type=int, default=2000)
    parser.add_argument('--epochs', type=int, default=demo.DEFAULT_EPOCHS)
    parser.add_argument('--lstm-units', type=int, default=demo.DEFAULT_LSTM_UNITS)
    parser.add_argument('--images', type=int, default=1000,
                        help='photos in the longer of the two caption-pipeline runs (the shorter has a fifth)')
    parser.add_argument('--repeats', type=int, default=measure.REPEATS)
    parser.add_argument('--workdir', help='keep the data and models here (default: a temporary folder)')
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix='img2txt-decoders-')
    captions, images = scenes.write_scenes(os.path.join(workdir, 'scenes'), args.scenes, seed=0)
    print(f'{args.scenes} scenes, {args.epochs} epochs, LSTM {args.lstm_units}, {args.seeds} seeds -> {workdir}',
          flush=True)

    print('linear colour probe on single-shape test scenes (trained on the train split\'s):')
    for layer in dict.fromkeys(layer for _, _, layer, _ in CANDIDATES):
        shares = colour_probe(captions, images, layer)
        print(f'  {layer:9} ' + ', '.join(f'{subset} {share:.0%} of {count}'
                                          for subset, (share, count) in shares.items()), flush=True)

    rows, exports = {}, {}
    for label, decoder, layer, options in CANDIDATES:
        data = preprocessed(workdir, captions, images, layer)
        runs = []
        for seed in range(args.seeds):
            trained, metrics = train_and_evaluate(data, os.path.join(workdir, f'{label.replace("/", "-")}-{seed}'),
                                                  decoder, options, args, seed)
            runs.append((trained.captions_per_second, metrics))
            exports.setdefault(label, trained.export_dir)
            held = figure(metrics, scenes.HELD_OUT_SUBSET, evaluation.MENTIONS_RIGHT)
            print(f'  {label} seed {seed}: held-out mentions right {held:.0%}, '
                  f'{trained.captions_per_second:.0f} captions/s', flush=True)
        rows[label] = runs

    columns = [(evaluation.ALL, BLEU_4), (evaluation.ALL, evaluation.CIDER_D),
               (scenes.SEEN, evaluation.MENTIONS_RIGHT), (scenes.HELD_OUT_SUBSET, evaluation.MENTIONS_RIGHT),
               (scenes.SEEN, BLEU_4), (scenes.HELD_OUT_SUBSET, BLEU_4)]
    print(f'\nquality on the test split, median over {args.seeds} seeds (min, max):')
    medians = {}
    for label, runs in rows.items():
        print(f'  {label}')
        for subset, name in columns:
            values = [figure(metrics, subset, name) for _, metrics in runs]
            medians[label, subset, name] = statistics.median(values)
            print(f'    {subset:9} {name:15} {measure.summary(values, digits=3)}')
        print(f'    training captions/s       {measure.summary([rate for rate, _ in runs], digits=0)}')

    test_scenes = sorted(os.path.join(images, name) for name in demo.scenes_of_split(captions))
    folders = {count: os.path.join(workdir, f'photos-{count}') for count in (args.images, args.images // 5)}
    for count, folder in folders.items():
        link_photos(test_scenes, folder, count)
    outputs = itertools.count()

    def marginal(export_dir):
        def sample():
            seconds = {count: pipeline_seconds(export_dir, folder, os.path.join(workdir, f'captions-{next(outputs)}'),
                                               [])
                       for count, folder in folders.items()}
            return (args.images - args.images // 5) / (seconds[args.images] - seconds[args.images // 5])
        return sample

    rates = measure.interleave({label: marginal(export_dir) for label, export_dir in exports.items()},
                               repeats=args.repeats)
    print(f'\ncaption pipeline, marginal images/s over {args.images} test scenes ({args.repeats} rounds):')
    for label, samples in rates.items():
        print(f'  {label:20} {measure.summary(samples)}')

    reference = 'show_and_tell'
    best = max((label for label, *_ in CANDIDATES),
               key=lambda label: medians[label, scenes.HELD_OUT_SUBSET, evaluation.MENTIONS_RIGHT])
    held = medians[best, scenes.HELD_OUT_SUBSET, evaluation.MENTIONS_RIGHT]
    seen = medians[best, scenes.SEEN, evaluation.MENTIONS_RIGHT]
    bleu, reference_bleu = medians[best, evaluation.ALL, BLEU_4], medians[reference, evaluation.ALL, BLEU_4]
    print(f'\nbest on held-out pairs: {best}')
    print(f'  held-out mentions right {held:.1%} (target >= 50%)')
    print(f'  seen mentions right     {seen:.1%} (target >= 90%)')
    print(f'  BLEU-4 {bleu:.3f} against show_and_tell {reference_bleu:.3f} (target: at least)')
    if best != reference:
        speed = measure.ratios(rates[best], rates[reference])
        print(f'  caption pipeline / show_and_tell: {measure.summary(speed, scale=100, unit="%")} (target >= 70%)')


if __name__ == '__main__':
    main()
