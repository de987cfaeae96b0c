"""The Dataflow Flex Template's parameters are the caption job's flags."""
import dataclasses
import json
import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import img2txt
from img2txt.jobs import caption, cli, flags
from img2txt.pipelines import beam_options, caption as caption_pipeline

TEMPLATE = os.path.join(os.path.dirname(img2txt.__file__), 'jobs', 'dataflow')


def test_every_template_parameter_is_a_caption_flag():
    metadata = json.load(open(os.path.join(TEMPLATE, 'caption_metadata.json')))
    fields = {field.name: field for field in dataclasses.fields(caption_pipeline.CaptionConfig)}
    names = [p['name'] for p in metadata['parameters']]
    assert set(names) == set(fields)
    required = {name for name, field in fields.items()
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING}
    assert {p['name'] for p in metadata['parameters'] if not p['isOptional']} == required


def test_launcher_parameters_become_the_config_and_pipeline_options():
    argv = caption.template_args(['--model=gs://b/export/7', '--input=gs://p/**', '--output=gs://b/out',
                                  '--incremental=true', '--top_k=2', '--run_id=nightly', '--project=img2txt-test'])
    args, beam_args = cli.build_parser().parse_known_args(argv)
    config = flags.from_args(caption_pipeline.CaptionConfig, args)
    assert config == caption_pipeline.CaptionConfig(model='gs://b/export/7', input=['gs://p/**'],
                                                    output='gs://b/out', incremental=True, top_k=2, run_id='nightly')
    assert beam_args == ['--project=img2txt-test']
    with pytest.raises(ValueError, match='incremental must be true or false'):
        caption.template_args(['--incremental=yes'])


def test_a_template_launch_does_not_wait(monkeypatch):
    assert not beam_options.is_template_launch(PipelineOptions([]))
    monkeypatch.setenv('FLEX_TEMPLATE_PYTHON_PY_FILE', os.path.join(TEMPLATE, 'caption_template.py'))
    assert beam_options.is_template_launch(PipelineOptions([]))


def test_the_schedules_treat_a_run_skipped_for_the_lease_as_skipped():
    schedules = os.path.join(os.path.dirname(img2txt.__file__), 'jobs', 'schedule')
    [line] = [line for line in open(os.path.join(schedules, 'crontab')) if not line.startswith('#')]
    assert line.rstrip().endswith(f'|| [ $? -eq {caption.EXIT_LEASE_HELD} ]')
    assert caption.EXIT_LEASE_HELD not in (0, 1, 2, 130)  # cli.main's other statuses
