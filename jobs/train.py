"""``img2txt train``: a preprocess output → a trained caption model, checkpoints and an exported captioner."""
import dataclasses
import functools
import json
import signal

from img2txt.jobs import flags
from img2txt.model import training
from img2txt.model.networks import decoders
from img2txt.model.training import distribution
from img2txt.model.config import TrainingConfig
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import training_run


def register(subparsers):
    """Adds the ``train`` subcommand."""
    parser = subparsers.add_parser(
        'train', help='TFRecords from preprocess -> a trained captioner: checkpoints, TensorBoard logs, export',
        description='Train a captioner (Show and Tell, or Show, Attend and Tell) on the output of img2txt preprocess, on every GPU of the '
                    'machine when it has some. Run it again with the same --model-dir to resume from the latest '
                    'checkpoint (also after SIGTERM or Ctrl-C, which stop it with a checkpoint). At the end the '
                    f'captioner is exported to MODEL_DIR/{training_run.EXPORT_DIR}/STEP.')
    parser.add_argument('--data', required=True, metavar='DIR',
                        help='output folder of img2txt preprocess, local or gs://')
    parser.add_argument('--model-dir', required=True, metavar='DIR',
                        help=f'where {training_run.CHECKPOINT_DIR}/, {training_run.LOG_DIR}/ (TensorBoard), '
                             f'{training_run.CONFIG_FILE} and {training_run.EXPORT_DIR}/ go, local or gs://')
    parser.add_argument('--decoder', choices=decoder_names.NAMES, default=decoder_names.SHOW_AND_TELL,
                        help='; '.join(f'{decoder.name}: {decoder.summary}' for decoder in decoders.ENTRIES)
                             + ' (default: %(default)s)')
    parser.add_argument('--strategy', choices=distribution.STRATEGIES, default=None,
                        help='tf.distribute strategy: "default" (the CPU or one GPU) or "mirrored" (every GPU); '
                             'default: mirrored when there are several GPUs')
    parser.add_argument('--mixed-precision', action='store_true',
                        help='compute in float16 on GPUs (with loss scaling), bfloat16 on CPUs; weights stay float32')
    # One flag per field of any decoder's config: a field several decoders have means the same in each.
    own = '; '.join(f'{decoder.name} only: ' + ', '.join('--' + name.replace('_', '-') for name in fields)
                    for decoder, fields in _own_fields().items() if fields)
    group = parser.add_argument_group(f'model (the vocabulary size, feature dimension and grid cells come from the '
                                      f'data; {own})')
    added = set(training.DATA_MODEL_FIELDS)
    for decoder in decoders.ENTRIES:
        flags.add_arguments(group, decoder.config_class, exclude=added)
        added |= _fields(decoder)
    flags.add_arguments(parser.add_argument_group('training'), TrainingConfig)
    parser.set_defaults(run=run)


def run(args, beam_args):
    """Trains, printing progress lines and then a JSON summary.

    Returns 0, or 128 + the signal's number when SIGTERM or SIGINT stopped
    training early (as if the signal had ended the process), so a scheduler
    sees that the job did not finish.
    """
    result = training.train(
        args.data, args.model_dir, _model_options(args), flags.from_args(TrainingConfig, args),
        decoder=args.decoder, strategy=args.strategy, mixed_precision=args.mixed_precision,
        log=functools.partial(print, flush=True))
    summary = {field.name: getattr(result, field.name) for field in dataclasses.fields(result) if field.name != 'model'}
    print(json.dumps(summary, indent=2), flush=True)
    if result.interrupted_by:
        return 128 + signal.Signals[result.interrupted_by]
    return 0


def _model_options(args):
    """The model flags that belong to ``--decoder``'s config, as ``training.train``'s model options.

    Raises:
      ValueError: a flag of another decoder was set (to other than its default).
    """
    own = _fields(decoders.get(args.decoder))
    options, foreign = {}, []
    every = {field.name: field for decoder in decoders.ENTRIES for field in dataclasses.fields(decoder.config_class)}
    for name, field in every.items():
        if name in training.DATA_MODEL_FIELDS:
            continue
        value = getattr(args, name)
        if name in own:
            options[name] = value
        elif value != field.default:
            foreign.append('--' + name.replace('_', '-'))
    if foreign:
        raise ValueError(f'{", ".join(foreign)}: not an option of --decoder {args.decoder}')
    return options


def _fields(decoder):
    return {field.name for field in dataclasses.fields(decoder.config_class)}


def _own_fields():
    """{decoder: the user-set fields of its config that not every decoder has}."""
    shared = set.intersection(*(_fields(decoder) for decoder in decoders.ENTRIES))
    return {decoder: [field.name for field in dataclasses.fields(decoder.config_class)
                      if field.name not in shared | set(training.DATA_MODEL_FIELDS)]
            for decoder in decoders.ENTRIES}
