"""``img2txt demo``: the whole system end to end, on data that ships with it or is generated.

1. The encoder: the bundled sample photos (``jobs/samples/``) classified with
   the packaged ImageNet weights, offline.
2. A caption dataset: generated scenes of coloured shapes (``pipelines/datasets/scenes.py``)
   with five captions each; a few colour-shape pairs are held out of training.
3. ``preprocess`` on the local Beam runner: CNN features, vocabulary,
   TFRecords; for the attention decoder also the encoder's stride-16 maps.
4. ``train``: the soft-attention decoder (``--decoder show_and_tell``: Show
   and Tell) with Adam, then export of one captioner.
5. ``evaluate`` on the test split: the COCO metrics on the scenes of seen
   pairs and on those of held-out pairs, and how often every object's colour
   and shape are named right: where Show and Tell's binding fails, measured.
6. ``caption``: the Beam pipeline over the test scenes, the sample photos and
   two broken files, into Parquet.
7. ``report``: one HTML page of all of it, with where the attention decoder
   looked for each word.

The default decoder and its options are those ``benchmarks/decoders.py``
measured best on the held-out pairs within this budget.
"""
import importlib.resources
import json
import os
import shutil

from img2txt.jobs import classify, report
from img2txt.model import training
from img2txt.model.networks import decoders, encoders
from img2txt.model.config import TrainingConfig
from img2txt.pipelines import caption, evaluate, preprocess
from img2txt.pipelines.datasets import scenes
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import evaluation, manifest

# Marks a folder as the demo's own, so a rerun may clear it and nothing else.
MARKER = '.img2txt-demo'
REPORT = 'report.html'
DEFAULT_EPOCHS = 24
DEFAULT_LSTM_UNITS = 256
# The decoder, the encoder map it attends over and its options: what
# benchmarks/decoders.py measured best on the held-out pairs within the demo's budget.
DEFAULT_DECODER = decoder_names.ATTENTION
SPATIAL_LAYER = 'stride16'
DECODER_OPTIONS = {decoder_names.ATTENTION: {'attention_units': 128, 'inject_context': False}}


def sample_photos():
    """Paths of the bundled sample photos, sorted by name."""
    folder = importlib.resources.files('img2txt.jobs') / 'samples'
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith('.jpg'))


def register(subparsers):
    """Adds the ``demo`` subcommand."""
    parser = subparsers.add_parser('demo', help='run img2txt end to end: scenes -> preprocess -> train -> evaluate '
                                                '-> caption -> report', description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', default='demo_output',
                        help='folder for the scenes, TFRecords, model, captions and report; cleared first if a '
                             'previous demo made it (default: %(default)s)')
    parser.add_argument('--scenes', type=int, default=2000, help='scenes to generate (default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=DEFAULT_EPOCHS, help='training epochs (default: %(default)s)')
    parser.add_argument('--lstm-units', type=int, default=DEFAULT_LSTM_UNITS,
                        help='LSTM and embedding size; im2txt uses 512 (default: %(default)s)')
    parser.add_argument('--decoder', choices=decoder_names.NAMES, default=DEFAULT_DECODER,
                        help=f'caption decoder; attention looks at the encoder\'s {SPATIAL_LAYER} map '
                             '(default: %(default)s, measured best by benchmarks/decoders.py)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the scenes and of training')
    parser.set_defaults(run=run, beam_flags=True)


def training_options(decoder=DEFAULT_DECODER, lstm_units=DEFAULT_LSTM_UNITS, epochs=DEFAULT_EPOCHS, seed=0,
                     options=None):
    """The demo's model and training budget, the same for either decoder: (model options, ``TrainingConfig``).

    The decoder's own options are ``DECODER_OPTIONS``' updated with ``options``.
    """
    extra = {**DECODER_OPTIONS.get(decoder, {}), **(options or {})}
    return ({'embedding_size': lstm_units, 'lstm_units': lstm_units, **extra},
            TrainingConfig(optimizer='adam', batch_size=128, num_epochs=epochs, seed=seed,
                           log_every_steps=25, validation_every_steps=100))


def fresh(workdir):
    """Empties ``workdir`` if an earlier demo made it (or creates it); refuses any other non-empty folder."""
    if os.path.isdir(workdir) and os.listdir(workdir):
        if not os.path.exists(os.path.join(workdir, MARKER)):
            raise ValueError(f'{workdir} is not empty and not a previous demo\'s folder; pass another --workdir')
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    open(os.path.join(workdir, MARKER), 'w').close()


def _collection(folder, images, test_scenes):
    """The photos the demo captions: the test scenes, the sample photos and two broken files."""
    for name, paths in (('scenes', [os.path.join(images, s) for s in test_scenes]), ('samples', sample_photos())):
        os.makedirs(os.path.join(folder, name))
        for path in paths:
            shutil.copy(path, os.path.join(folder, name))
    os.makedirs(os.path.join(folder, 'broken'))
    with open(sample_photos()[0], 'rb') as f:
        truncated = f.read()[:2000]
    with open(os.path.join(folder, 'broken', 'truncated.jpg'), 'wb') as f:
        f.write(truncated)
    with open(os.path.join(folder, 'broken', 'notes.jpg'), 'w', encoding='utf-8') as f:
        f.write('not a photo\n')
    return os.path.join(folder, '**')


def run(args, beam_args):
    """Runs the seven steps, printing what each produced; ends with the metrics table and the report's path."""
    if args.scenes < 50:
        raise ValueError(f'--scenes must be at least 50, got {args.scenes}')
    fresh(args.workdir)

    encoder = encoders.load()
    print(f'1/7 encoder {encoder.id}, ImageNet weights from the installed package:')
    for image, classes in classify.classify(encoder, sample_photos(), 3):
        print(f'    {os.path.basename(image)}: ' + ', '.join(f'{name} {p:.0%}' for _, _, name, p in classes))

    captions, images = scenes.write_scenes(os.path.join(args.workdir, 'scenes'), args.scenes, seed=args.seed)
    held_out = ', '.join(f'{colour} {shape}' for colour, shape in scenes.HELD_OUT)
    print(f'2/7 generated {args.scenes} scenes with 5 captions each -> {captions}\n'
          f'    never in training: {held_out} (their colours and shapes are, in other pairs)')

    data = os.path.join(args.workdir, 'data')
    spatial = decoders.get(args.decoder).reads_spatial_map
    result = preprocess.run_config(preprocess.PreprocessConfig(
        dataset='jsonl', captions=captions, images=images, output=data, spatial_features=spatial,
        spatial_layer=SPATIAL_LAYER if spatial else encoders.DEFAULT_SPATIAL_LAYER), beam_args)
    counts = result[manifest.COUNTS]
    print(f'3/7 preprocess: {counts[manifest.IMAGES_WRITTEN]} images and {counts[manifest.CAPTIONS_WRITTEN]} '
          f'captions written, {counts[manifest.IMAGES_FAILED]} failed; vocabulary of '
          f'{result[manifest.VOCABULARY][manifest.VOCABULARY_SIZE]} tokens -> {data}')

    model_dir = os.path.join(args.workdir, 'model')
    trained = training.train(data, model_dir, *training_options(args.decoder, args.lstm_units, args.epochs, args.seed),
                             decoder=args.decoder, log=lambda line: print(f'    {line}'))
    print(f'4/7 trained {args.decoder}, {trained.step} steps ({trained.captions_per_second:.0f} captions/s), '
          f'validation perplexity {trained.val_perplexity:.2f}; exported {trained.model_id} -> {trained.export_dir}')

    evaluation_dir = os.path.join(args.workdir, 'evaluation')
    metrics = evaluate.run_config(evaluate.EvaluateConfig(model=trained.export_dir, output=evaluation_dir,
                                                          data=data), beam_args)
    held = metrics[evaluation.SUBSETS].get(scenes.HELD_OUT_SUBSET, {}).get(evaluation.MENTIONS_RIGHT)
    seen = metrics[evaluation.SUBSETS].get(scenes.SEEN, {}).get(evaluation.MENTIONS_RIGHT)
    print(f'5/7 evaluate on the test split -> {evaluation_dir}; every object named right: '
          f'{seen:.0%} of seen-pair scenes, {held:.0%} of held-out-pair scenes')

    collection = _collection(os.path.join(args.workdir, 'photos'), images, scenes_of_split(captions))
    captions_dir = os.path.join(args.workdir, 'captions')
    run_manifest = caption.run_config(caption.CaptionConfig(model=trained.export_dir, input=[collection],
                                                            output=captions_dir), beam_args)
    run_counts = run_manifest[manifest.COUNTS]
    print(f'6/7 caption pipeline: {run_counts[manifest.MATCHED]} files, {run_counts[manifest.CAPTIONED]} '
          f'captioned, {run_counts[manifest.FAILED]} failed -> {captions_dir}')

    page = os.path.join(args.workdir, REPORT)
    with open(page, 'w', encoding='utf-8') as f:
        f.write(report.render(captions_dir, evaluation_dir, model_dir))
    print(f'7/7 report -> {page}')
    print()
    print(evaluate.table(metrics))
    print(f'\nOpen {os.path.abspath(page)} in a browser to see the captions, errors, metrics and loss curves.')
    return 0


def scenes_of_split(captions_path, split='test'):
    """File names of one split's scenes, from the generated JSONL."""
    with open(captions_path, encoding='utf-8') as f:
        return sorted(record['image'] for record in map(json.loads, f) if record['split'] == split)
