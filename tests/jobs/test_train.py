"""img2txt train: the command line, a real export, SIGTERM, and the Vertex AI job spec."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from img2txt.jobs import cli, vertex
from img2txt.model import training
from img2txt.model.serving import export
from img2txt.model.serving.captioner import ExportInfo
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import captioner, training_run
from training_data import random_images, write_training_data

TINY_FLAGS = ['--embedding-size', '16', '--lstm-units', '16', '--batch-size', '4']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Features as wide as the default encoder's, so the trained model exports with it; photos squashed."""
    images = random_images(6, 2, feature_dim=1280)
    return write_training_data(tmp_path_factory.mktemp('data'), {'train': images, 'val': images[:2]},
                               resize_mode='squash'), images


def test_help_lists_model_and_training_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['train', '--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ('--data', '--model-dir', '--strategy', '--mixed-precision', '--lstm-units', '--beam-size',
                 '--batch-size', '--optimizer', '--max-steps', '--captions-per-image', '--checkpoint-every-steps',
                 '--decoder', '--attention-units', '--gate', '--no-gate', '--doubly-stochastic-weight',
                 '--caption-validation-every-steps', '--caption-validation-images', '--export-checkpoint'):
        assert flag in out
    assert '--vocab-size' not in out and '--feature-dim' not in out and '--grid-cells' not in out


def test_attention_flags_map_onto_its_config(tmp_path, monkeypatch, capsys):
    # Export of the attention model is model.serving.export's (tested there): stood in for here.
    exported = []
    monkeypatch.setattr(training.loop, 'export_model',
                        lambda model, model_config, *args: exported.append(model_config) or 'attention@1')
    data_dir = write_training_data(tmp_path / 'data', {'train': random_images(4, 1, feature_dim=8, grid=(2, 3))})
    model_dir = tmp_path / 'model'
    assert cli.main(['train', '--decoder', 'attention', '--data', data_dir, '--model-dir', str(model_dir),
                     '--max-steps', '2', '--attention-units', '8', '--no-gate', '--doubly-stochastic-weight', '0.5',
                     *TINY_FLAGS]) == 0
    saved = json.loads((model_dir / training_run.CONFIG_FILE).read_text())
    assert saved[training_run.DECODER] == decoder_names.ATTENTION
    model = saved[training_run.MODEL]
    assert (model['attention_units'], model['gate'], model['doubly_stochastic_weight']) == (8, False, 0.5)
    assert (model['grid_cells'], model['feature_dim'], model['lstm_units']) == (6, 8, 16)
    assert [c.to_dict() for c in exported] == [model]
    out = capsys.readouterr().out
    assert json.loads(out[out.index('{'):])['model_id'] == 'attention@1'


@pytest.fixture(scope='module')
def attention_data(tmp_path_factory):
    """Spatial maps shaped as the default encoder's (7x7x1280), so the trained attention model exports with it."""
    images = random_images(6, 2, feature_dim=1280, grid=(7, 7))
    return write_training_data(tmp_path_factory.mktemp('attention-data'), {'train': images, 'val': images[:2]}), [
        (image_id, features.reshape(-1, features.shape[-1]), captions) for image_id, features, captions in images]


@pytest.mark.parametrize('decoder, data_fixture', [('show_and_tell', 'data'), ('attention', 'attention_data')])
def test_short_run_exports_a_working_captioner(decoder, data_fixture, request, tmp_path, capsys):
    data_dir, images = request.getfixturevalue(data_fixture)
    model_dir = str(tmp_path / 'model')
    assert cli.main(['train', '--decoder', decoder, '--data', data_dir, '--model-dir', model_dir, '--max-steps', '4',
                     '--log-every-steps', '2', '--optimizer', 'adam', *TINY_FLAGS]) == 0
    out = capsys.readouterr().out
    assert 'step 2/4 (epoch 0.67): loss ' in out and 'validation at step 4: loss ' in out
    summary = json.loads(out[out.index('{'):])
    assert summary['step'] == 4 and summary['interrupted_by'] is None and summary['val_loss'] > 0
    assert summary['export_dir'] == os.path.join(model_dir, training_run.EXPORT_DIR, '4')
    assert open(os.path.join(summary['export_dir'], captioner.MODEL_ID_FILE)).read().strip() == summary['model_id']
    assert summary['model_id'].startswith(f'{decoder}@')
    # The captioner resizes photos as preprocess did for its data.
    assert ExportInfo.read(summary['export_dir']).input_spec.resize_mode == (
        'squash' if data_fixture == 'data' else 'crop')

    loaded = export.load_captioner(summary['export_dir'])
    features = np.stack([f for _, f, _ in images[:3]])
    result = loaded.signatures[captioner.CAPTION_FEATURES](**{captioner.FEATURES: tf.constant(features)})
    assert result[captioner.CAPTIONS].shape == (3, 3)
    assert all(word.startswith('word') for caption in export.captions_text(result[captioner.CAPTIONS])
               for text in caption for word in text.split())


def test_user_errors_are_one_line(data, tmp_path, capsys):
    data_dir, _ = data
    assert cli.main(['train', '--data', str(tmp_path / 'nothing'), '--model-dir', str(tmp_path / 'm')]) == 2
    assert capsys.readouterr().err.strip() == (
        f'img2txt train: error: {tmp_path / "nothing"} has no manifest.json: not the output of img2txt preprocess')
    assert cli.main(['train', '--data', data_dir, '--model-dir', str(tmp_path / 'm'), '--batch-size', '0']) == 2
    assert 'batch_size must be a positive integer' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(['train', '--data', data_dir, '--model-dir', str(tmp_path / 'm'), '--optimizer', 'rmsprop'])
    capsys.readouterr()  # argparse's usage message
    assert cli.main(['train', '--decoder', 'attention', '--data', data_dir, '--model-dir', str(tmp_path / 'm')]) == 2
    assert capsys.readouterr().err.strip() == (
        f'img2txt train: error: {data_dir} has no spatial feature maps, which the attention decoder reads: '
        f'rerun preprocess with --spatial-features')
    assert cli.main(['train', '--data', data_dir, '--model-dir', str(tmp_path / 'm'), '--attention-units', '8',
                     '--no-gate']) == 2
    assert capsys.readouterr().err.strip() == (
        'img2txt train: error: --attention-units, --gate: not an option of --decoder show_and_tell')
    assert not (tmp_path / 'm').exists()


def test_sigterm_stops_with_a_checkpoint(data, tmp_path):
    data_dir, _ = data
    model_dir = tmp_path / 'model'
    process = subprocess.Popen(
        [sys.executable, '-m', 'img2txt.jobs.cli', 'train', '--data', data_dir, '--model-dir', str(model_dir),
         '--num-epochs', '100000', '--checkpoint-every-steps', '3', '--log-every-steps', '1', *TINY_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (model_dir / training_run.CHECKPOINT_DIR / 'checkpoint').exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    summary = json.loads(out[out.index('{'):])
    step = summary['step']
    assert summary['interrupted_by'] == 'SIGTERM' and step >= 3 and summary['export_dir'] is None
    assert f'stopped by SIGTERM at step {step}' in out
    checkpoints = model_dir / training_run.CHECKPOINT_DIR
    assert tf.train.latest_checkpoint(str(checkpoints)) == str(checkpoints / f'{training_run.CHECKPOINT_PREFIX}-{step}')
    assert not (model_dir / training_run.EXPORT_DIR).exists()


def test_vertex_job_runs_train_on_a_gpu():
    job = vertex.custom_job('gs://b/coco', 'gs://b/runs/1', ['--batch-size', '64', '--optimizer', 'adam'],
                            package_uris=['gs://b/dist/img2txt-0.1.0.tar.gz'])
    [worker] = job['jobSpec']['workerPoolSpecs']
    assert worker['machineSpec'] == {'machineType': 'g2-standard-8', 'acceleratorType': 'NVIDIA_L4',
                                     'acceleratorCount': 1}
    package = worker['pythonPackageSpec']
    assert package['executorImageUri'] == vertex.EXECUTOR_IMAGE and package['pythonModule'] == 'img2txt.jobs.cli'
    assert package['args'] == ['train', '--data', 'gs://b/coco', '--model-dir', 'gs://b/runs/1',
                               '--batch-size', '64', '--optimizer', 'adam']
    # The args are a valid train command line.
    args = cli.build_parser().parse_args(package['args'])
    assert (args.command, args.batch_size, args.data) == ('train', 64, 'gs://b/coco')
    # And the whole job is a valid CustomJob resource of the Vertex AI API.
    from google.cloud.aiplatform_v1 import types
    from google.protobuf import json_format
    parsed = json_format.ParseDict(job, types.CustomJob()._pb)
    assert parsed.job_spec.scheduling.restart_job_on_worker_restart


def test_vertex_command_line_prints_gcloud_config_and_refuses_bad_input(capsys):
    assert vertex.main(['--data', 'gs://b/d', '--model-dir', 'gs://b/m', '--image-uri', 'us-docker.pkg.dev/p/i:1',
                        '--accelerator-count', '2', '--format', 'gcloud', '--max-steps', '100']) == 0
    spec = yaml.safe_load(capsys.readouterr().out)
    [worker] = spec['workerPoolSpecs']
    assert worker['machineSpec']['acceleratorCount'] == 2
    assert worker['containerSpec'] == {'imageUri': 'us-docker.pkg.dev/p/i:1', 'command': ['img2txt'], 'args': [
        'train', '--data', 'gs://b/d', '--model-dir', 'gs://b/m', '--max-steps', '100']}
    with pytest.raises(ValueError, match='data must be on gs://'):
        vertex.custom_job('/local/data', 'gs://b/m', image_uri='i')
    with pytest.raises(ValueError, match='unrecognized arguments: --batch-sise'):
        vertex.custom_job('gs://b/d', 'gs://b/m', ['--batch-sise', '64'], image_uri='i')
    with pytest.raises(ValueError, match='package_uris'):
        vertex.custom_job('gs://b/d', 'gs://b/m')
