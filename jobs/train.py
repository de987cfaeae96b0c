"""``img2txt train``: a preprocess output → a trained caption model, checkpoints and an exported captioner."""
import dataclasses
import functools
import json
import signal

from img2txt.jobs import flags
from img2txt.model import decoders, distribution, training
from img2txt.model.config import AttentionConfig, TrainingConfig
from img2txt.schemas import training_run

# Every decoder's config fields are among the attention decoder's (the shared ones have one name each),
# so its fields give one flag per model field.
_MODEL_FLAGS_CONFIG = AttentionConfig


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
    parser.add_argument('--decoder', choices=training_run.DECODERS, default=training_run.SHOW_AND_TELL,
                        help=f'{training_run.SHOW_AND_TELL}: an LSTM on the pooled feature vector; '
                             f'{training_run.ATTENTION}: soft attention over the feature map, which preprocess '
                             f'stores with --spatial-features (default: %(default)s)')
    parser.add_argument('--strategy', choices=distribution.STRATEGIES, default=None,
                        help='tf.distribute strategy: "default" (the CPU or one GPU) or "mirrored" (every GPU); '
                             'default: mirrored when there are several GPUs')
    parser.add_argument('--mixed-precision', action='store_true',
                        help='compute in float16 on GPUs (with loss scaling), bfloat16 on CPUs; weights stay float32')
    flags.add_arguments(parser.add_argument_group(
        'model (the vocabulary size, feature dimension and grid cells come from the data; --attention-units, '
        '--gate and --doubly-stochastic-weight are the attention decoder\'s)'),
        _MODEL_FLAGS_CONFIG, exclude=training.DATA_MODEL_FIELDS)
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
    own = {field.name for field in dataclasses.fields(decoders.config_class(args.decoder))}
    options, foreign = {}, []
    for field in dataclasses.fields(_MODEL_FLAGS_CONFIG):
        if field.name in training.DATA_MODEL_FIELDS:
            continue
        value = getattr(args, field.name)
        if field.name in own:
            options[field.name] = value
        elif value != field.default:
            foreign.append('--' + field.name.replace('_', '-'))
    if foreign:
        raise ValueError(f'{", ".join(foreign)}: not an option of --decoder {args.decoder}')
    return options
