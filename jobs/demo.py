"""``img2txt demo``: the project end to end on data that ships with it or is generated.

1. The encoder: the bundled sample photos (``jobs/samples/``) classified with
   the packaged ImageNet weights, offline.
2. A caption dataset: generated scenes of coloured shapes (``jobs/scenes.py``)
   with five captions each, split train/val/test.
3. ``preprocess`` on the local Beam runner: CNN features, vocabulary, TFRecords.
4. ``train``: Show and Tell with Adam, then export of one captioner.
5. The exported captioner, loaded with TensorFlow alone, captions the held-out
   test scenes from their JPEG bytes; the demo prints BLEU-4 and CIDEr-D
   against the five references, how many captions equal one of them, and a few
   examples.
"""
import importlib.resources
import json
import os
import shutil

import tensorflow as tf

from img2txt.jobs import classify, scenes
from img2txt.model import encoders, evaluation, export, training
from img2txt.model.config import TrainingConfig
from img2txt.pipelines import preprocess
from img2txt.schemas import captioner, manifest

# Marks a folder as the demo's own, so a rerun may clear it and nothing else.
MARKER = '.img2txt-demo'


def sample_photos():
    """Paths of the bundled sample photos, sorted by name."""
    folder = importlib.resources.files('img2txt.jobs') / 'samples'
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith('.jpg'))


def register(subparsers):
    """Adds the ``demo`` subcommand."""
    parser = subparsers.add_parser('demo', help='run img2txt end to end: generated scenes -> preprocess -> train '
                                                '-> caption', description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', default='demo_output',
                        help='folder for the scenes, TFRecords and model; cleared first if a previous demo made '
                             'it (default: %(default)s)')
    parser.add_argument('--scenes', type=int, default=2000, help='scenes to generate (default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=12, help='training epochs (default: %(default)s)')
    parser.add_argument('--lstm-units', type=int, default=256,
                        help='LSTM and embedding size; im2txt uses 512 (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the scenes and of training')
    parser.set_defaults(run=run, beam_flags=True)


def _fresh(workdir):
    if os.path.isdir(workdir) and os.listdir(workdir):
        if not os.path.exists(os.path.join(workdir, MARKER)):
            raise ValueError(f'{workdir} is not empty and not a previous demo\'s folder; pass another --workdir')
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    open(os.path.join(workdir, MARKER), 'w').close()


def run(args, beam_args):
    """Runs the five steps, printing what each produced."""
    if args.scenes < 50:
        raise ValueError(f'--scenes must be at least 50, got {args.scenes}')
    _fresh(args.workdir)

    encoder = encoders.load()
    print(f'1/5 encoder {encoder.id}, ImageNet weights from the installed package:')
    for image, classes in classify.classify(encoder, sample_photos(), 3):
        print(f'    {os.path.basename(image)}: ' + ', '.join(f'{name} {p:.0%}' for _, _, name, p in classes))

    captions, images = scenes.write_scenes(os.path.join(args.workdir, 'scenes'), args.scenes, seed=args.seed)
    print(f'2/5 generated {args.scenes} scenes with 5 captions each: {captions}')

    data = os.path.join(args.workdir, 'data')
    result = preprocess.run_config(preprocess.PreprocessConfig(
        dataset='jsonl', captions=captions, images=images, output=data), beam_args)
    counts = result[manifest.COUNTS]
    print(f'3/5 preprocess: {counts[manifest.IMAGES_WRITTEN]} images and {counts[manifest.CAPTIONS_WRITTEN]} '
          f'captions written, {counts[manifest.IMAGES_FAILED]} failed; vocabulary of '
          f'{result[manifest.VOCABULARY][manifest.VOCABULARY_SIZE]} tokens -> {data}')

    trained = training.train(
        data, os.path.join(args.workdir, 'model'),
        {'embedding_size': args.lstm_units, 'lstm_units': args.lstm_units},
        TrainingConfig(optimizer='adam', batch_size=128, num_epochs=args.epochs, seed=args.seed,
                       log_every_steps=25, validation_every_steps=10_000),
        log=lambda line: print(f'    {line}'))
    print(f'4/5 trained {trained.step} steps ({trained.captions_per_second:.0f} captions/s), validation '
          f'perplexity {trained.val_perplexity:.2f}; exported {trained.model_id} -> {trained.export_dir}')

    _caption_test_scenes(trained.export_dir, captions, images)
    return 0


def _caption_test_scenes(export_dir, captions_path, images, shown=8, batch_size=64):
    with open(captions_path, encoding='utf-8') as f:
        test = [record for record in map(json.loads, f) if record['split'] == 'test']
    model = tf.saved_model.load(export_dir)
    caption_images = model.signatures[captioner.CAPTION_IMAGES]
    best = []
    for start in range(0, len(test), batch_size):
        batch = [tf.io.read_file(os.path.join(images, r['image'])) for r in test[start:start + batch_size]]
        outputs = caption_images(**{captioner.IMAGES: tf.stack(batch)})
        best += [c[0] for c in export.captions_text(outputs[captioner.CAPTIONS])]
    exact = sum(caption in record['captions'] for caption, record in zip(best, test))
    scores = evaluation.score({r['image']: c for c, r in zip(best, test)}, {r['image']: r['captions'] for r in test})
    print(f'5/5 the exported captioner (TensorFlow alone, from JPEG bytes) on {len(test)} held-out scenes: '
          f'BLEU-4 {scores["BLEU-4"]:.3f}, CIDEr-D {scores["CIDEr-D"]:.3f}; {exact} ({exact / len(test):.0%}) '
          f'captions equal one of the five references')
    for caption, record in list(zip(best, test))[:shown]:
        mark = '=' if caption in record['captions'] else ' '
        print(f'  {mark} {record["image"]}: {caption!r}   (reference: {record["captions"][0]!r})')
