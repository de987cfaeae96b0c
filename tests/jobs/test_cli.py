"""The img2txt command: help, classify on real photos, one-line errors."""
import collections
import json
import os
import re
import subprocess
import sys

import pytest
import skimage.data
from PIL import Image

from img2txt.jobs import cli, demo
from img2txt.model import evaluation as model_evaluation
from img2txt.pipelines.datasets import scenes
from img2txt.schemas import evaluation


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


def test_demo_runs_end_to_end_and_learns_far_more_than_the_most_common_caption(tmp_path, capsys, training_seed):
    workdir = tmp_path / 'demo'
    assert cli.main(['demo', '--workdir', str(workdir), '--scenes', '400', '--epochs', '30',
                     '--lstm-units', '128', '--seed', str(training_seed)]) == 0
    out = capsys.readouterr().out
    assert 'coffee.jpg: espresso' in out
    assert '3/7 preprocess: 400 images and 2000 captions written, 0 failed' in out
    assert '4/7 trained attention, ' in out
    assert '6/7 caption pipeline: 46 files, 44 captioned, 2 failed' in out
    assert out.rstrip().endswith(f'Open {workdir / "report.html"} in a browser to see the captions, errors, '
                                 'metrics and loss curves.')
    metrics = json.loads((workdir / 'evaluation' / evaluation.METRICS_FILE).read_text())[evaluation.SUBSETS]
    assert {name: m[evaluation.IMAGES_COUNT] for name, m in metrics.items()} == {
        'all': 40, scenes.SEEN: 20, scenes.HELD_OUT_SUBSET: 20}
    assert 'held_out ' in out and 'mentions_right' in out  # the table

    records = [json.loads(line) for line in open(workdir / 'scenes' / 'captions.jsonl')]
    most_common, _ = collections.Counter(c for r in records if r['split'] == 'train'
                                         for c in r['captions']).most_common(1)[0]
    test = [r for r in records if r['split'] == 'test']
    baseline, _ = model_evaluation.score({r['image']: most_common for r in test},
                                         {r['image']: r['captions'] for r in test}, meteor=False)
    assert metrics['all']['BLEU-4'] > baseline['BLEU-4'] + 0.1
    assert metrics['all']['CIDEr-D'] > 2.5 * baseline['CIDEr-D']
    assert metrics[scenes.SEEN][evaluation.MENTIONS_RIGHT] > 0.1
    report = (workdir / 'report.html').read_text()
    assert 'truncated.jpg' in report and 'notes.jpg' in report
    # The demo's attention decoder shows where it looked, word by word.
    assert '<section id="attention"><h2>Where the model looked</h2>' in report


def test_demo_clears_only_its_own_folder(tmp_path):
    mine = tmp_path / 'mine'
    demo.fresh(str(mine))
    (mine / 'model.txt').write_text('old run')
    demo.fresh(str(mine))
    assert os.listdir(mine) == [demo.MARKER]
    other = tmp_path / 'precious'
    other.mkdir()
    (other / 'thesis.tex').write_text('keep me')
    with pytest.raises(ValueError, match='not a previous demo'):
        demo.fresh(str(other))
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
    # TensorFlow's own log lines (absl's format: severity, date, time, thread, file:line]), hidden by default.
    tensorflow_line = re.compile(r'^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+\.cc:\d+\] ', re.MULTILINE)
    assert tensorflow_line.search(verbose.stderr), verbose.stderr
    assert not tensorflow_line.search(quiet.stderr)
