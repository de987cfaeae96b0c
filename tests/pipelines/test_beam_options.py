"""Pipeline options: offline local runner by default, user flags untouched, Dataflow graphs built offline."""
import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import DirectOptions, SetupOptions, StandardOptions
from apache_beam.runners.portability import prism_runner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

import img2txt
from img2txt.pipelines.beam_options import is_dry_run, is_local, pipeline_options
from dataflow_flags import DATAFLOW_DRY_RUN

SETUP_PY = os.path.join(os.path.dirname(img2txt.__file__), 'setup.py')


@pytest.fixture
def prism_attempts(monkeypatch):
    """Calls to the Prism runner, which DirectRunner makes before falling back to Python."""
    calls = []
    monkeypatch.setattr(prism_runner.PrismRunner, 'run_pipeline', lambda self, *args: calls.append(args))
    return calls


def test_defaults_run_locally_without_save_main_session_and_change_nothing_else():
    options = pipeline_options([])
    assert is_local(options) and not is_dry_run(options)
    assert options.view_as(SetupOptions).save_main_session is False
    assert set(options.get_all_options(drop_default=True)) == {'runner', 'save_main_session'}


def test_passes_user_flags_through():
    options = pipeline_options(['--runner', 'DirectRunner', '--direct_running_mode=multi_processing',
                                '--direct_num_workers=2', '--save_main_session', '--my_flag=7'])
    assert options.view_as(StandardOptions).runner == 'DirectRunner'
    assert options.view_as(DirectOptions).direct_running_mode == 'multi_processing'
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.view_as(SetupOptions).save_main_session is True
    assert options.get_all_options(retain_unknown_options=True)['my_flag'] == '7'
    assert pipeline_options(['--no_save_main_session']).view_as(SetupOptions).save_main_session is False


def test_overrides_win_over_flags():
    options = pipeline_options(['--direct_num_workers=2'], direct_num_workers=3, runner='DirectRunner')
    assert options.view_as(DirectOptions).direct_num_workers == 3
    assert options.view_as(StandardOptions).runner == 'DirectRunner'


@pytest.mark.parametrize('runner', ['DataflowRunner', 'dataflow', 'TestDataflowRunner',
                                    'apache_beam.runners.dataflow.dataflow_runner.DataflowRunner'])
def test_dataflow_stages_the_project_setup_file(runner):
    assert os.path.isfile(SETUP_PY)
    assert pipeline_options([f'--runner={runner}']).view_as(SetupOptions).setup_file == SETUP_PY


@pytest.mark.parametrize('flag', ['--setup_file=/src/other/setup.py', '--sdk_container_image=gcr.io/p/img2txt:1'])
def test_dataflow_keeps_the_users_packaging(flag):
    setup_file = pipeline_options(['--runner=DataflowRunner', flag]).view_as(SetupOptions).setup_file
    assert setup_file == ('/src/other/setup.py' if flag.startswith('--setup_file') else None)


def test_dataflow_without_a_source_checkout_asks_for_a_setup_file(monkeypatch, tmp_path):
    installed = tmp_path / 'site-packages' / 'img2txt'
    installed.mkdir(parents=True)
    monkeypatch.setattr(img2txt, '__file__', str(installed / '__init__.py'))
    with pytest.raises(FileNotFoundError, match='pass --setup_file='):
        pipeline_options(['--runner=DataflowRunner'])
    assert pipeline_options([]).view_as(SetupOptions).setup_file is None


def test_default_runner_runs_without_prism(prism_attempts):
    with beam.Pipeline(options=pipeline_options([])) as p:
        assert_that(p | beam.Create(range(10)) | beam.Map(lambda x: x * x) | beam.CombineGlobally(sum),
                    equal_to([285]))
    assert prism_attempts == []


def test_default_runner_takes_the_direct_runners_parallelism_flags(prism_attempts):
    with beam.Pipeline(options=pipeline_options(['--direct_running_mode=multi_processing',
                                                 '--direct_num_workers=2'])) as p:
        pids = (p
                | beam.Create(range(4))
                | beam.Map(lambda _: os.getpid())
                | beam.Filter(lambda pid, parent: pid != parent, os.getpid()))
        assert_that(pids | beam.combiners.Count.Globally(), equal_to([4]))
    assert prism_attempts == []


def test_test_pipeline_runs_without_prism(prism_attempts):
    with TestPipeline() as p:
        assert_that(p | beam.Create(['a', 'b', 'a']) | beam.combiners.Count.PerElement(),
                    equal_to([('a', 2), ('b', 1)]))
    assert prism_attempts == []


def test_dataflow_job_graph_builds_offline():
    p = beam.Pipeline(options=pipeline_options(DATAFLOW_DRY_RUN))
    _ = (p
         | 'Create' >> beam.Create([1, 2, 3])
         | 'Double' >> beam.Map(lambda x: 2 * x)
         | 'Write' >> beam.io.WriteToText('gs://img2txt-test/out/part'))
    result = p.run()

    assert result.state == beam.runners.runner.PipelineState.DONE
    assert result.job.proto.name  # the job request that a real run would submit
    names = {t.unique_name for t in p.runner.proto_pipeline.components.transforms.values()}
    assert {'Create', 'Double', 'Write'} <= names
    [environment] = p.runner.proto_pipeline.components.environments.values()
    staged = b''.join(a.role_payload for a in environment.dependencies)
    assert b'workflow.tar.gz' in staged  # the sdist that --setup_file built, locally
    assert b'pickled_main_session' not in staged
