"""``img2txt flickr8k``: the recommended captioner for real photos, trained and measured on Flickr8k (``make flickr8k``).

1. Checks the folder: ``dataset_flickr8k.json`` (Karpathy's split file) and
   every photo it names under ``images/``.
2. ``preprocess``: EfficientNet-Lite0 features of every photo (with the
   attention decoder, its 7x7 head map too), the whole photo squashed to the
   encoder's square (``--resize squash``: the shared copy's photos are already
   squashed to 224x224), the vocabulary, TFRecords.
3. ``train`` the decoder (``--decoder``; attention by default, soft attention
   over the head map) with cross-entropy (Adam, batches of 64 captions),
   captioning val with beam search after every epoch and keeping the
   checkpoint with the best CIDEr-D.
4. ``train`` self-critical from that checkpoint: CIDEr-D of sampled captions
   against the train references (``model.training.self_critical``), Adam at 2.5e-4
   with batches of 64 photos, val scored every half epoch; the best checkpoint is the recommended
   captioner, exported at ``OUTPUT/model/export/STEP``.
5. ``evaluate`` both stages' exports on val, and prints them beside the
   published figures.

The recipe is what ``benchmarks/flickr8k.py`` measured best within 90 minutes
on a 2-core machine (the README's "Real photos" section has the figures).
Run it again with the same ``--output`` and it goes on where it stopped: the
preprocess output is reused, training resumes from its checkpoints.
"""
import json
import math
import os

from img2txt.model import training
from img2txt.model.networks import decoders
from img2txt.model.training import input_pipeline
from img2txt.model.config import SELF_CRITICAL, TrainingConfig
from img2txt.pipelines import evaluate, preprocess
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import evaluation, flickr8k, manifest

# Attention over Lite0's head map scored val CIDEr-D 0.402 after one epoch where Show and Tell's pooled vector
# reached 0.361 after six, at about the same captions/s on 2 cores (benchmarks/flickr8k.py).
DEFAULT_DECODER = decoder_names.ATTENTION
DEFAULT_CROSS_ENTROPY_EPOCHS = 6
DEFAULT_SELF_CRITICAL_EPOCHS = 4
BATCH_SIZE = 64
# Self-critical training's Adam rate: TrainingConfig's default (5e-5, self-critical.pytorch's for batches of 10
# images) times 5 for batches of 64. Measured on val from the same cross-entropy model: 5e-5 gave CIDEr-D
# 0.361 -> 0.372 -> 0.366 over its first epoch, 2.5e-4 0.361 -> 0.364 -> 0.372 -> 0.388 -> 0.404 over two.
SELF_CRITICAL_LEARNING_RATE = 2.5e-4

# Published figures (0-1 scale), all on Flickr8k's test split; val runs about 10% lower here (issue 15's
# baseline: val BLEU-4 0.163, METEOR 0.176, CIDEr-D 0.370 where test gave 0.184 / 0.184 / 0.407).
PUBLISHED = (
    ('Show and Tell re-implementations, frozen VGG-16, beam 3 (test)',
     {evaluation.BLEU[3]: 0.198, evaluation.METEOR: 0.191, evaluation.CIDER_D: 0.478}),
    ('Show, Attend and Tell, hard attention (Xu et al. 2015; test)',
     {evaluation.BLEU[0]: 0.670, evaluation.BLEU[3]: 0.213, evaluation.METEOR: 0.203}),
    ('Adaptive attention, fine-tuned ResNet-152 re-implementation (test)',
     {evaluation.BLEU[3]: 0.233, evaluation.METEOR: 0.209, evaluation.CIDER_D: 0.587}),
)
VALIDATION_SPLIT = 'val'


def register(subparsers):
    """Adds the ``flickr8k`` subcommand."""
    parser = subparsers.add_parser(
        'flickr8k', help='train and measure the recommended captioner on Flickr8k: preprocess -> cross-entropy '
                         '-> self-critical -> evaluate on val', description=__doc__.split('\n\n')[0])
    parser.add_argument('--flickr8k', required=True, metavar='DIR',
                        help=f'folder with {flickr8k.CAPTIONS_FILE} and {flickr8k.IMAGES_DIR}/ (the original '
                             'download works, as does ../shared/data/flickr8k)')
    parser.add_argument('--output', default='flickr8k_output', metavar='DIR',
                        help='where the stages write; a rerun goes on where the last stopped (default: %(default)s)')
    parser.add_argument('--decoder', choices=decoder_names.NAMES, default=DEFAULT_DECODER,
                        help='the decoder to train (default: %(default)s)')
    parser.add_argument('--cross-entropy-epochs', type=int, default=DEFAULT_CROSS_ENTROPY_EPOCHS,
                        help='epochs of the cross-entropy stage (default: %(default)s)')
    parser.add_argument('--self-critical-epochs', type=int, default=DEFAULT_SELF_CRITICAL_EPOCHS,
                        help='epochs of the self-critical stage; 0 skips it (default: %(default)s)')
    parser.add_argument('--lstm-units', type=int, default=512,
                        help='LSTM and embedding size, im2txt\'s (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of training (default: %(default)s)')
    parser.set_defaults(run=run, beam_flags=True)


def check_folder(folder):
    """Raises ValueError, on one line, naming what a Flickr8k folder lacks: its split file, images/, or photos."""
    captions = os.path.join(folder, flickr8k.CAPTIONS_FILE)
    images = os.path.join(folder, flickr8k.IMAGES_DIR)
    missing = [name for name, path in ((flickr8k.CAPTIONS_FILE, captions), (f'{flickr8k.IMAGES_DIR}/', images))
               if not os.path.exists(path)]
    if missing:
        raise ValueError(f'{folder} is not a Flickr8k folder: it has no {" and no ".join(missing)}')
    try:
        with open(captions, encoding='utf-8') as f:
            names = [image['filename'] for image in json.load(f)['images']]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{captions} is not Karpathy\'s split file: {e!r}') from None
    absent = [name for name in names if not os.path.isfile(os.path.join(images, name))]
    if absent:
        raise ValueError(f'{images} lacks {len(absent)} of the {len(names)} photos {flickr8k.CAPTIONS_FILE} names '
                         f'(first: {absent[0]})')
    return captions, images


def run(args, beam_args):
    """Runs the five steps, printing each one's progress; ends with the val table."""
    for name in ('cross_entropy_epochs', 'lstm_units'):
        if getattr(args, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(args, name)}')
    captions, images = check_folder(args.flickr8k)
    print(f'1/5 {args.flickr8k}: {flickr8k.CAPTIONS_FILE} and every photo it names', flush=True)

    data = os.path.join(args.output, flickr8k.DATA_DIR)
    spatial = decoders.get(args.decoder).reads_spatial_map
    document = _preprocess(captions, images, data, spatial, beam_args)
    if spatial and not document.get(manifest.SPATIAL_DTYPE):
        raise ValueError(f'{data} holds no spatial maps, which the {args.decoder} decoder reads (it was '
                         'preprocessed for another decoder): delete it to preprocess again')
    counts = document[manifest.COUNTS]
    print(f'2/5 preprocess -> {data}: {counts[manifest.IMAGES_WRITTEN]} photos, {counts[manifest.CAPTIONS_WRITTEN]} '
          f'captions, {counts[manifest.IMAGES_FAILED]} failed; vocabulary of '
          f'{document[manifest.VOCABULARY][manifest.VOCABULARY_SIZE]} tokens', flush=True)

    model_options = {'embedding_size': args.lstm_units, 'lstm_units': args.lstm_units}
    stages = recipe_stages(document, args.output, args.cross_entropy_epochs, args.self_critical_epochs, args.seed)
    exports = []
    for number, (directory, name, config) in enumerate(stages, start=3):
        model_dir = os.path.join(args.output, directory)
        print(f'{number}/5 train {args.decoder}, {name}, {config.num_epochs} epochs -> {model_dir}', flush=True)
        trained = training.train(data, model_dir, model_options, config, decoder=args.decoder,
                                 log=lambda line: print(f'    {line}', flush=True))
        if trained.interrupted_by:
            return 2
        exports.append((name, directory, trained.export_dir))
    if len(stages) == 1:
        print('4/5 self-critical stage skipped (--self-critical-epochs 0)')

    print(f'5/5 evaluate on {VALIDATION_SPLIT}', flush=True)
    rows = []
    for name, directory, export_dir in exports:
        output = os.path.join(args.output, flickr8k.EVALUATION_DIR, directory)
        metrics = evaluate.run_config(evaluate.EvaluateConfig(model=export_dir, output=output, data=data,
                                                              split=VALIDATION_SPLIT), beam_args)
        print(f'    {name}: {export_dir} -> {output}', flush=True)
        rows.append((f'{name} ({export_dir})', metrics[evaluation.SUBSETS][evaluation.ALL]))
    print()
    print(table(rows, images=rows[-1][1][evaluation.IMAGES_COUNT]))
    print(f'\nThe recommended captioner: {exports[-1][2]}\n'
          f'Try it: img2txt describe --model {exports[-1][2]} PHOTO.jpg')
    return 0


def recipe_stages(document, output, cross_entropy_epochs, self_critical_epochs, seed):
    """[(model dir under ``output``, stage name, ``TrainingConfig``)]: cross-entropy, then self-critical from it.

    Cross-entropy scores val with beam search after every epoch, self-critical
    every half epoch (and at its start); each keeps its best checkpoint. Without
    ``self_critical_epochs``, the cross-entropy stage alone.
    """
    splits = document[manifest.SPLITS]['train']
    epoch = math.ceil(splits[manifest.SPLIT_CAPTIONS] / BATCH_SIZE)
    stages = [(flickr8k.CROSS_ENTROPY_DIR, 'cross-entropy', TrainingConfig(
        optimizer='adam', batch_size=BATCH_SIZE, num_epochs=cross_entropy_epochs, seed=seed, log_every_steps=100,
        checkpoint_every_steps=epoch, validation_every_steps=epoch, caption_validation_every_steps=epoch))]
    if self_critical_epochs:
        epoch = math.ceil(splits[manifest.SPLIT_IMAGES] / BATCH_SIZE)
        half = max(1, epoch // 2)
        stages.append((flickr8k.MODEL_DIR, 'self-critical', TrainingConfig(
            objective=SELF_CRITICAL, init_from=os.path.join(output, flickr8k.CROSS_ENTROPY_DIR), optimizer='adam',
            learning_rate=SELF_CRITICAL_LEARNING_RATE, batch_size=BATCH_SIZE, num_epochs=self_critical_epochs,
            seed=seed, log_every_steps=10, checkpoint_every_steps=half, validation_every_steps=epoch,
            caption_validation_every_steps=half)))
    return stages


def table(rows, images):
    """The val figures of each (name, scores) row, then the published figures, as aligned text."""
    columns = list(evaluation.METRICS)
    width = max(len(name) for name, _ in [*rows, *PUBLISHED])
    lines = [f'Flickr8k {VALIDATION_SPLIT}, {images} photos'.ljust(width) + '  '
             + '  '.join(f'{c:>8}' for c in columns)]
    for name, scores in [*rows, *PUBLISHED]:
        cells = [f'{scores[c]:>8.3f}' if isinstance(scores.get(c), float) else f'{"-":>8}' for c in columns]
        lines.append(name.ljust(width) + '  ' + '  '.join(cells))
    return '\n'.join(lines)


def _preprocess(captions, images, data, spatial, beam_args):
    """The manifest of the preprocess output at ``data``, running preprocess first unless it completed before."""
    path = os.path.join(data, manifest.FILE_NAME)
    if os.path.exists(path):
        print(f'    reusing {data} (delete it to preprocess again)', flush=True)
        return input_pipeline.read_manifest(data)
    return preprocess.run_config(preprocess.PreprocessConfig(
        dataset='karpathy', captions=captions, images=images, output=data, resize='squash',
        spatial_features=spatial), beam_args)
