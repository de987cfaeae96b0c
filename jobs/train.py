"""``img2txt train``: a preprocess output → a trained Show-and-Tell model, checkpoints and an exported captioner."""
import dataclasses
import functools
import json
import signal

from img2txt.jobs import flags
from img2txt.model import distribution, training
from img2txt.model.config import ModelConfig, TrainingConfig
from img2txt.schemas import training_run


def register(subparsers):
    """Adds the ``train`` subcommand."""
    parser = subparsers.add_parser(
        'train', help='TFRecords from preprocess -> a trained captioner: checkpoints, TensorBoard logs, export',
        description='Train a Show-and-Tell captioner on the output of img2txt preprocess, on every GPU of the '
                    'machine when it has some. Run it again with the same --model-dir to resume from the latest '
                    'checkpoint (also after SIGTERM or Ctrl-C, which stop it with a checkpoint). At the end the '
                    f'captioner is exported to MODEL_DIR/{training_run.EXPORT_DIR}/STEP.')
    parser.add_argument('--data', required=True, metavar='DIR',
                        help='output folder of img2txt preprocess, local or gs://')
    parser.add_argument('--model-dir', required=True, metavar='DIR',
                        help=f'where {training_run.CHECKPOINT_DIR}/, {training_run.LOG_DIR}/ (TensorBoard), '
                             f'{training_run.CONFIG_FILE} and {training_run.EXPORT_DIR}/ go, local or gs://')
    parser.add_argument('--strategy', choices=distribution.STRATEGIES, default=None,
                        help='tf.distribute strategy: "default" (the CPU or one GPU) or "mirrored" (every GPU); '
                             'default: mirrored when there are several GPUs')
    parser.add_argument('--mixed-precision', action='store_true',
                        help='compute in float16 on GPUs (with loss scaling), bfloat16 on CPUs; weights stay float32')
    flags.add_arguments(parser.add_argument_group('model (the vocabulary size and feature dimension come from '
                                                  'the data)'), ModelConfig, exclude=training.DATA_MODEL_FIELDS)
    flags.add_arguments(parser.add_argument_group('training'), TrainingConfig)
    parser.set_defaults(run=run)


def run(args, beam_args):
    """Trains, printing progress lines and then a JSON summary.

    Returns 0, or 128 + the signal's number when SIGTERM or SIGINT stopped
    training early (as if the signal had ended the process), so a scheduler
    sees that the job did not finish.
    """
    model_options = {field.name: getattr(args, field.name) for field in dataclasses.fields(ModelConfig)
                     if field.name not in training.DATA_MODEL_FIELDS}
    result = training.train(
        args.data, args.model_dir, model_options, flags.from_args(TrainingConfig, args), strategy=args.strategy,
        mixed_precision=args.mixed_precision, log=functools.partial(print, flush=True))
    summary = {field.name: getattr(result, field.name) for field in dataclasses.fields(result) if field.name != 'model'}
    print(json.dumps(summary, indent=2), flush=True)
    if result.interrupted_by:
        return 128 + signal.Signals[result.interrupted_by]
    return 0
