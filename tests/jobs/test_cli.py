"""The img2txt command: help, classify on real photos, one-line errors."""
import json
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


def test_demo_classifies_the_bundled_photos(capsys):
    assert cli.main(['demo']) == 0
    lines = dict(line.split(': ', 1) for line in capsys.readouterr().out.splitlines()[1:])
    assert set(lines) == {'astronaut.jpg', 'chelsea.jpg', 'coffee.jpg', 'rocket.jpg'}
    assert lines['coffee.jpg'].startswith('espresso')
    assert lines['rocket.jpg'].startswith('missile')
