"""``img2txt caption``: photo collections (local or gs://) → Parquet captions, errors and a run manifest."""
import json

from img2txt.pipelines import caption, flags
from img2txt.schemas import manifest


def register(subparsers):
    """Adds the ``caption`` subcommand."""
    parser = subparsers.add_parser(
        'caption', help='caption photo collections (folders, globs, gs:// buckets) into Parquet',
        description=caption.__doc__.split('\n\n')[0] + ' Runs on Beam: --direct_running_mode multi_processing '
                    '--direct_num_workers N uses N local cores; --runner DataflowRunner --project P --region R '
                    '--temp_location gs://... runs on Dataflow. Run it again with --incremental to caption only '
                    'what is new.')
    flags.add_arguments(parser, caption.CaptionConfig)
    parser.set_defaults(run=run, beam_flags=True)


def run(args, beam_args):
    """Runs the pipeline and prints the run's counts and where its rows are."""
    result = caption.run_config(flags.from_args(caption.CaptionConfig, args), beam_args)
    if result is None:
        print('the job graph was built and submitted or validated (dry run); nothing ran here')
        return 0
    counts = result[manifest.COUNTS]
    print(json.dumps({'run_id': result[manifest.RUN_ID], 'model_id': result[manifest.MODEL_ID],
                      'counts': counts, 'images_per_second': result[manifest.IMAGES_PER_SECOND],
                      'output': args.output}, indent=2))
    return 0
