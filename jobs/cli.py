"""The ``img2txt`` command: one subcommand per job.

Each job module defines ``register(subparsers)``, which adds its parser and
sets ``run`` to a function taking ``(args, beam_args)``: the parsed flags and
the flags this CLI does not know, which pipeline jobs hand to Beam untouched
(``--runner``, ``--project``, ``--direct_num_workers`` ...). Other jobs refuse
unknown flags.

Errors a user can cause (a missing file, a bad format, an unknown name) print
one line naming the input and exit with status 2; ``--traceback`` shows the
full trace instead.

The terminal shows the job's own lines: without ``--log-level``, TensorFlow's
C++ logs (CUDA probing, CPU feature notes) are off and Python libraries log
errors only; ``--log-level INFO`` or ``DEBUG`` shows everything.
"""
import argparse
import atexit
import logging
import os
import re
import sys
import threading

LOG_LEVELS = ('DEBUG', 'INFO', 'WARNING', 'ERROR')


def _log_level(argv):
    """The --log-level in ``argv`` (either spelling), or None."""
    for i, arg in enumerate(argv):
        if arg == '--log-level' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--log-level='):
            return arg.split('=', 1)[1]
    return None


# TensorFlow reads its C++ log level once, when the job modules below import it.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0' if _log_level(sys.argv) in ('DEBUG', 'INFO') else '3')

# TensorFlow's C++ log lines (absl's "I0000 00:00:... file.cc:153] ..." and its
# announcement, or "2026-12-01 ...: I file.cc:32] ..."), info to error; fatal ones pass.
_NATIVE_LOG = re.compile(rb'^(WARNING: All log messages before absl::InitializeLog\(\)'
                         rb'|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] '
                         rb'|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [\w./-]+:\d+\] )')


def _drop_native_logs():
    """Filters TensorFlow's C++ log lines out of this process's stderr (file descriptor 2) until exit.

    TensorFlow 2.19 and later print them before absl's logging is set up,
    where ``TF_CPP_MIN_LOG_LEVEL`` has no effect (tensorflow/tensorflow#100442).
    Everything else written to stderr, by Python or by child processes,
    passes through unchanged.
    """
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, 'rb') as source, os.fdopen(os.dup(original), 'wb', buffering=0) as target:
            for line in source:
                if not _NATIVE_LOG.match(line):
                    target.write(line)

    thread = threading.Thread(target=pump, name='img2txt-stderr', daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last writer in this process: the pump ends
        thread.join(timeout=2)

    atexit.register(restore)


if __name__ == '__main__' or os.path.basename(sys.argv[0]) == 'img2txt':
    if _log_level(sys.argv) not in ('DEBUG', 'INFO'):
        _drop_native_logs()

from img2txt import __version__  # noqa: E402
from img2txt.jobs import caption, classify, demo, describe, evaluate, flickr8k, preprocess, report, train  # noqa: E402

# Order of the subcommands in --help: the order a user meets them.
JOBS = (demo, preprocess, train, evaluate, caption, describe, report, classify, flickr8k)


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
    parser.add_argument('--log-level', default=None, choices=LOG_LEVELS,
                        help="show libraries' log messages from this level up, TensorFlow's C++ ones too at INFO "
                             "and DEBUG (default: img2txt's warnings and libraries' errors only)")
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
    _configure_logging(args.log_level)
    try:
        return args.run(args, beam_args) or 0
    except (OSError, ValueError) as e:
        if args.traceback:
            raise
        print(f'img2txt {args.command}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _configure_logging(level):
    """Libraries (Beam logs on the root logger) at ``level``, or errors only; img2txt's own warnings always."""
    logging.basicConfig(level=level or 'ERROR', format='%(asctime)s %(levelname)s %(name)s: %(message)s',
                        force=True)
    logging.getLogger('img2txt').setLevel(level or 'WARNING')
    if level is None:
        # TensorFlow's Python logger has a handler of its own (retracing warnings and the like).
        logging.getLogger('tensorflow').setLevel('ERROR')


if __name__ == '__main__':
    sys.exit(main())
