"""``img2txt caption``: photo collections (local or gs://) → Parquet captions, errors and a run manifest.

Exit statuses: 0 done; 2 an error the user can fix (``jobs.cli``), damaged
files of earlier runs among them; ``EXIT_LEASE_HELD`` (75) skipped because
another run holds the output's lease, which schedulers treat as "skipped,
the last run is still going" (``jobs/schedule/``).
"""
import dataclasses
import json
import sys

from img2txt.jobs import flags
from img2txt.pipelines import caption, lease
from img2txt.schemas import manifest

# sysexits.h's EX_TEMPFAIL: "a temporary failure; the user is invited to retry". Not 1 or 2 (errors) nor 130.
EXIT_LEASE_HELD = 75


def register(subparsers):
    """Adds the ``caption`` subcommand."""
    parser = subparsers.add_parser(
        'caption', help='caption photo collections (folders, globs, gs:// buckets) into Parquet',
        description=caption.__doc__.split('\n\n')[0] + ' Runs on Beam: --direct_running_mode multi_processing '
                    '--direct_num_workers N uses N local cores; --runner DataflowRunner --project P --region R '
                    '--temp_location gs://... runs on Dataflow. Run it again with --incremental to caption only '
                    'what is new. A run started while another holds the output\'s lease exits with status '
                    f'{EXIT_LEASE_HELD}, naming it.')
    flags.add_arguments(parser, caption.CaptionConfig)
    parser.set_defaults(run=run, beam_flags=True)


def run(args, beam_args):
    """Runs the pipeline and prints the run's counts and where its rows are."""
    try:
        result = caption.run_config(flags.from_args(caption.CaptionConfig, args), beam_args)
    except lease.LeaseHeldError as e:
        print(f'img2txt caption: skipped: {e}', file=sys.stderr)
        return EXIT_LEASE_HELD
    if result is None:
        print('the job graph was built and submitted or validated (dry run); nothing ran here')
        return 0
    counts = result[manifest.COUNTS]
    print(json.dumps({'run_id': result[manifest.RUN_ID], 'model_id': result[manifest.MODEL_ID],
                      'counts': counts, 'images_per_second': result[manifest.IMAGES_PER_SECOND],
                      'output': args.output}, indent=2))
    return 0


def template_args(argv):
    """A Dataflow template launch's flags → ``img2txt caption``'s argv.

    The launcher passes each template parameter (``jobs/dataflow/caption_metadata.json``,
    named as ``CaptionConfig``'s fields) as ``--name=value``, booleans as
    ``true``/``false``; the CLI spells them ``--top-k=3``, ``--incremental``.
    Other flags are pipeline options and pass unchanged.
    """
    fields = {field.name: field for field in dataclasses.fields(caption.CaptionConfig)}
    translated = []
    for arg in argv:
        name, _, value = arg[2:].partition('=')
        field = fields.get(name) if arg.startswith('--') else None
        if field is None:
            translated.append(arg)
            continue
        flag = name.replace('_', '-')
        if field.type is bool:
            if value.lower() not in ('true', 'false'):
                raise ValueError(f'template parameter {name} must be true or false, got {value!r}')
            translated.append(f'--{flag}' if value.lower() == 'true' else f'--no-{flag}')
        else:
            translated.append(f'--{flag}={value}')
    return ['caption', *translated]
