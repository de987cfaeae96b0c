"""``img2txt preprocess``: a caption dataset and its images → training TFRecords."""
import json

from img2txt.jobs import flags
from img2txt.pipelines import preprocess
from img2txt.schemas import manifest


def register(subparsers):
    """Adds the ``preprocess`` subcommand."""
    parser = subparsers.add_parser(
        'preprocess', help='caption dataset + images -> TFRecords with CNN features and a vocabulary',
        description=preprocess.__doc__.split('\n\n')[0] + ' Runs on Beam: add --runner DataflowRunner '
                    '--project P --region R --temp_location gs://... to run on Dataflow, or '
                    '--direct_running_mode multi_processing --direct_num_workers N to use N local cores.')
    flags.add_arguments(parser, preprocess.PreprocessConfig)
    parser.set_defaults(run=run, beam_flags=True)


def run(args, beam_args):
    """Runs the pipeline and prints the manifest's counts."""
    result = preprocess.run_config(flags.from_args(preprocess.PreprocessConfig, args), beam_args)
    if result is None:
        print('dry run: the job graph was built and validated; nothing ran')
        return 0
    print(json.dumps({'output': args.output, 'counts': result[manifest.COUNTS],
                      'splits': {s: v[manifest.SPLIT_IMAGES] for s, v in result[manifest.SPLITS].items()},
                      'vocabulary_size': result[manifest.VOCABULARY][manifest.VOCABULARY_SIZE]}, indent=2))
    return 0
