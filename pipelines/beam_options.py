"""Pipeline options every img2txt pipeline runs with.

``pipeline_options(beam_args)`` passes the user's Beam flags through and fills
in only what they leave unset:

- No ``--runner``: ``FnApiRunner``, Beam's in-process Python batch runner. The
  default ``DirectRunner`` (Beam 2.77) first tries Prism, which downloads a Go
  binary from GitHub into ``~/.apache_beam/cache/prism`` with no timeout. Where
  DNS fails this costs about a second before it falls back to the Python
  runner; behind a firewall that drops packets it waits for the TCP connect
  to time out (minutes); with network it downloads, and a cached binary
  silently changes the runner. ``FnApiRunner`` is what DirectRunner falls
  back to for batch pipelines, and it reads the same ``--direct_running_mode``
  (``in_memory``, ``multi_threading``, ``multi_processing``) and
  ``--direct_num_workers`` flags. It cannot run streaming pipelines; img2txt
  has none. An explicit ``--runner=DirectRunner``
  is honoured, Prism attempt included. ``TestPipeline`` also defaults to
  DirectRunner; tests/conftest.py points it at ``LOCAL_RUNNER``.
- No ``--save_main_session`` / ``--no_save_main_session``: False. Pipeline code
  lives in importable modules, and Beam's default pickler (cloudpickle) would
  otherwise pickle ``__main__`` on Dataflow.
- On Dataflow without ``--setup_file`` or ``--sdk_container_image``: the
  project's setup.py, so workers install the same img2txt. It exists only in a
  source checkout (editable install); otherwise the user must name one.

A Dataflow job graph builds offline, without credentials or GCS, with::

    --runner=DataflowRunner --dry_run=True --no_auth --project=img2txt-test
    --region=us-central1 --temp_location=gs://img2txt-test/tmp

A dry run translates the pipeline, runs the stager locally (it builds the
``--setup_file`` sdist with ``python setup.py sdist`` and runs ``pip freeze``;
nothing is uploaded) and returns a DONE result whose ``job`` holds the job
request; nothing is submitted and no credentials are looked up, so
``--no_auth`` is optional. The values must pass validation: ``--project=p`` is
an "Invalid Project ID", and without a valid ``--temp_location`` or
``--staging_location`` bucket (``gs://b/tmp`` is too short a name) Beam looks
up or creates a default staging bucket on GCS, which offline means about 25 s
of credential retries and then two minutes of storage retries.
``--experiments=disable_logging_submission_environment`` skips ``pip freeze``.
tf.Transform creates its temp dir through TensorFlow's own GCS client while
the graph is built, so the preprocess job gives it local scratch when
``--dry_run`` is set (``img2txt preprocess ... --dry_run=True`` works offline).
"""
import os

from apache_beam.options.pipeline_options import (PipelineOptions, SetupOptions, StandardOptions, TestOptions,
                                                  WorkerOptions)

import img2txt

LOCAL_RUNNER = 'FnApiRunner'
_DATAFLOW_RUNNERS = {'dataflowrunner', 'testdataflowrunner'}


def pipeline_options(beam_args, **overrides):
    """PipelineOptions from ``beam_args`` (Beam flags) with img2txt's defaults.

    ``overrides`` are option names (argparse ``dest``s) and win over flags, as
    in ``PipelineOptions``. Defaults apply only where both leave a value unset.
    Raises FileNotFoundError on Dataflow when no setup.py can be found.
    """
    options = PipelineOptions(beam_args, **overrides)
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = LOCAL_RUNNER
    setup = options.view_as(SetupOptions)
    if setup.save_main_session is None:
        setup.save_main_session = False
    if (_is_dataflow(standard.runner) and setup.setup_file is None
            and not options.view_as(WorkerOptions).sdk_container_image):
        setup.setup_file = project_setup_file()
    return options


def project_setup_file():
    """The setup.py beside the img2txt package: present in a source checkout."""
    path = os.path.join(os.path.dirname(os.path.abspath(img2txt.__file__)), 'setup.py')
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'Dataflow workers need the img2txt code, but {path} does not exist (img2txt is not '
            f'installed from a source checkout): pass --setup_file=/path/to/img2txt/setup.py '
            f'or --sdk_container_image')
    return path


def _is_dataflow(runner):
    name = (runner if isinstance(runner, str) else type(runner).__name__).rsplit('.', 1)[-1].lower()
    return name in _DATAFLOW_RUNNERS or name + 'runner' in _DATAFLOW_RUNNERS


def is_local(options):
    """Whether ``options`` run the pipeline in this process or its children (not a remote service)."""
    runner = options.view_as(StandardOptions).runner
    name = (runner if isinstance(runner, str) else type(runner).__name__).rsplit('.', 1)[-1]
    return name in (LOCAL_RUNNER, 'DirectRunner', 'BundleBasedDirectRunner', 'SwitchingDirectRunner')


def is_dry_run(options):
    """Whether a Dataflow ``--dry_run`` only builds and validates the job graph.

    Read as DataflowRunner reads it, so both agree on whether anything will run.
    """
    return bool(options.view_as(TestOptions).dry_run)


def is_template_launch(options):
    """Whether this process launches a Dataflow template, which must submit the job and not wait for it.

    A Flex Template's launcher image sets ``FLEX_TEMPLATE_PYTHON_PY_FILE``
    (jobs/dataflow/Dockerfile); a classic template is staged with
    ``--template_location``.
    """
    return bool(os.environ.get('FLEX_TEMPLATE_PYTHON_PY_FILE') or options.get_all_options().get('template_location'))
