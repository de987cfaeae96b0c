"""The img2txt command: help, classify on real photos, one-line errors."""
import json
import os
import subprocess
import sys

import pytest
import skimage.data
from PIL import Image

from img2txt.jobs import cli


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('photos')
    Image.fromarray(skimage.data.coffee()).save(folder / 'coffee.jpg', quality=92)
    Image.fromarray(skimage.data.chelsea()).save(folder / 'chelsea.png')
    (folder / 'notes.jpg').write_text('not a photo')
    return folder


def test_console_script_help_lists_the_jobs():
    result = subprocess.run([sys.executable, '-m', 'img2txt.jobs.cli', '--help'], capture_output=True, text=True,
                            check=True)
    assert 'classify' in result.stdout and 'usage: img2txt' in result.stdout


def test_classify_names_known_photos(photos, capsys):
    assert cli.main(['classify', str(photos / 'coffee.jpg'), str(photos / 'chelsea.png'), '--top', '3']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith('coffee.jpg') and 'espresso (967)' in out[1]
    assert out[4].endswith('chelsea.png') and 'cat (28' in out[5]


def test_classify_json_and_a_bad_image(photos, capsys):
    status = cli.main(['classify', '--json', str(photos / 'notes.jpg'), str(photos / 'coffee.jpg')])
    captured = capsys.readouterr()
    assert status == 1
    assert 'notes.jpg: error: NotAnImageError' in captured.err
    [line] = captured.out.splitlines()
    result = json.loads(line)
    assert result['classes'][0]['index'] == 967 and result['encoder'].startswith('efficientnet_lite0@')
    assert len(result['classes']) == 5


def test_user_errors_are_one_line(photos, capsys):
    assert cli.main(['classify', '--top', '0', str(photos / 'coffee.jpg')]) == 2
    assert capsys.readouterr().err.strip() == 'img2txt classify: error: --top must be at least 1, got 0'
    with pytest.raises(SystemExit):
        cli.main(['classify', '--encoder', 'alexnet', 'x.jpg'])
    with pytest.raises(SystemExit):
        cli.main(['classify', 'x.jpg', '--runner', 'DataflowRunner'])


def test_demo_runs_end_to_end(tmp_path, capsys):
    workdir = tmp_path / 'demo'
    args = ['demo', '--workdir', str(workdir), '--scenes', '60', '--epochs', '1', '--lstm-units', '32']
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert 'coffee.jpg: espresso' in out
    assert '3/5 preprocess: 60 images and 300 captions written, 0 failed' in out
    assert '5/5 the exported captioner (TensorFlow alone, from JPEG bytes) on 6 held-out scenes: BLEU-4 ' in out
    assert (workdir / 'model' / 'export').is_dir()
    # A rerun clears its own folder, and refuses a folder it did not make.
    assert cli.main(args) == 0
    other = tmp_path / 'precious'
    other.mkdir()
    (other / 'thesis.tex').write_text('keep me')
    assert cli.main(['demo', '--workdir', str(other)]) == 2
    assert (other / 'thesis.tex').exists()


def test_a_newcomer_sees_the_jobs_own_lines_not_tensorflows_log_noise(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), 'img2txt')
    command = [script, 'describe', '--model', str(tmp_path / 'no-model'), str(tmp_path / 'x.jpg')]
    quiet = subprocess.run(command, capture_output=True, text=True)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        f'img2txt describe: error: SavedModel file does not exist at: {tmp_path / "no-model"}/'
        '{saved_model.pbtxt|saved_model.pb}']
    verbose = subprocess.run([script, '--log-level', 'INFO', *command[1:]], capture_output=True, text=True)
    assert len(verbose.stderr.splitlines()) > 1  # TensorFlow's own lines, which the default hides
