"""The ``img2txt`` command: one subcommand per job.

Each job module defines ``register(subparsers)``, which adds its parser and
sets ``run`` to a function taking ``(args, beam_args)``: the parsed flags and
the flags this CLI does not know, which pipeline jobs hand to Beam untouched
(``--runner``, ``--project``, ``--direct_num_workers`` ...). Other jobs refuse
unknown flags.

Errors a user can cause (a missing file, a bad format, an unknown name) print
one line naming the input and exit with status 2; ``--traceback`` shows the
full trace instead.
"""
import argparse
import logging
import sys

from img2txt import __version__
from img2txt.jobs import caption, classify, demo, describe, preprocess, report, train

# Order of the subcommands in --help: the order a user meets them.
JOBS = (demo, preprocess, train, caption, describe, classify, report)


class UsageError(Exception):
    """A mistake in the command line or its inputs, reported as one line."""


def build_parser():
    """Returns the top-level parser with every job's subcommand."""
    parser = argparse.ArgumentParser(
        prog='img2txt',
        description='Describe photos in one sentence, at scale: preprocess caption datasets into '
                    'TFRecords, train a Show-and-Tell captioner, caption photo collections into Parquet.',
        epilog='Run "img2txt COMMAND --help" for the flags of a command. Pipeline commands pass '
               'flags they do not know to Apache Beam (e.g. --runner DataflowRunner --project P).')
    parser.add_argument('--version', action='version', version=f'img2txt {__version__}')
    parser.add_argument('--traceback', action='store_true', help='show the full traceback of errors')
    parser.add_argument('--log-level', default='WARNING', choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'],
                        help='Python logging level (default: %(default)s)')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for job in JOBS:
        job.register(subparsers)
    return parser


def main(argv=None):
    """Entry point of the ``img2txt`` console script; returns the exit status."""
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and not getattr(args, 'beam_flags', False):
        parser.error(f'unrecognized arguments: {" ".join(beam_args)}')
    logging.basicConfig(level=args.log_level, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        return args.run(args, beam_args) or 0
    except (UsageError, OSError, ValueError) as e:
        if args.traceback:
            raise
        print(f'img2txt {args.command}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
