"""The Flickr8k recipe on a folder of the same shape: every stage, the table, a rerun, and a folder that is not one."""
import json
import os
import re

import pytest

from img2txt.jobs import cli, flickr8k as recipe
from img2txt.pipelines.datasets import scenes
from img2txt.schemas import evaluation, flickr8k, training_run


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """60 generated scenes as Flickr8k's download lays out its photos and Karpathy's split file (train 42, val 18)."""
    root = tmp_path_factory.mktemp('flickr8k')
    captions, _ = scenes.write_scenes(str(root), 60, seed=3, splits=(0.7, 0.3, 0.0))
    records = [json.loads(line) for line in open(captions, encoding='utf-8')]
    os.remove(captions)
    (root / flickr8k.CAPTIONS_FILE).write_text(json.dumps({'dataset': 'flickr8k', 'images': [
        {'imgid': i, 'filename': r['image'], 'split': r['split'],
         'sentences': [{'raw': c, 'tokens': c.lower().split(), 'imgid': i, 'sentid': 5 * i + j}
                       for j, c in enumerate(r['captions'])]}
        for i, r in enumerate(records)]}))
    return root


def test_the_recipe_trains_both_stages_and_prints_the_val_table(folder, tmp_path, capsys, training_seed):
    output = tmp_path / 'out'
    argv = ['flickr8k', '--flickr8k', str(folder), '--output', str(output), '--cross-entropy-epochs', '2',
            '--self-critical-epochs', '1', '--lstm-units', '16', '--seed', str(training_seed)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert '2/5 preprocess -> ' in out and ': 60 photos, 300 captions, 0 failed' in out
    assert '3/5 train attention, cross-entropy, 2 epochs' in out
    assert '4/5 train attention, self-critical, 1 epochs' in out
    assert 'self-critical training: rewards are CIDEr-D against the references of 42 train images' in out
    assert 'val captions at step 0: CIDEr-D ' in out  # the self-critical stage scores where it starts
    exports = {stage: os.listdir(output / stage / training_run.EXPORT_DIR)
               for stage in (flickr8k.CROSS_ENTROPY_DIR, flickr8k.MODEL_DIR)}
    assert all(len(steps) == 1 for steps in exports.values())
    recommended = output / flickr8k.MODEL_DIR / training_run.EXPORT_DIR / exports[flickr8k.MODEL_DIR][0]
    for stage in exports:
        metrics = json.loads((output / flickr8k.EVALUATION_DIR / stage / evaluation.METRICS_FILE).read_text())
        assert metrics['split'] == 'val' and metrics[evaluation.SUBSETS][evaluation.ALL][evaluation.IMAGES_COUNT] == 18
    table = out[out.index('Flickr8k val, 18 photos'):]
    assert table.splitlines()[0].split()[-7:] == list(evaluation.METRICS)
    assert f'self-critical ({recommended})' in table and 'cross-entropy (' in table
    assert 'Show, Attend and Tell, hard attention (Xu et al. 2015; test)' in table
    assert out.rstrip().endswith(f'Try it: img2txt describe --model {recommended} PHOTO.jpg')

    # A rerun goes on where the first stopped: nothing left to train, the same exports.
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert 'reusing ' in out and f'self-critical ({recommended})' in out


def test_an_output_preprocessed_for_show_and_tell_is_refused_by_attention_naming_it(folder, tmp_path, capsys):
    output = tmp_path / 'out'
    common = ['flickr8k', '--flickr8k', str(folder), '--output', str(output), '--cross-entropy-epochs', '1',
              '--self-critical-epochs', '0', '--lstm-units', '8']
    assert cli.main(common + ['--decoder', 'show_and_tell']) == 0
    assert '3/5 train show_and_tell, cross-entropy, 1 epochs' in capsys.readouterr().out
    assert cli.main(common) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f'img2txt flickr8k: error: {output / flickr8k.DATA_DIR} holds no spatial maps, which the '
                   'attention decoder reads (it was preprocessed for another decoder): delete it to preprocess again')


@pytest.mark.parametrize('damage,message', [
    ('no folder', 'is not a Flickr8k folder: it has no dataset_flickr8k.json and no images/'),
    ('no split file', 'is not a Flickr8k folder: it has no dataset_flickr8k.json$'),
    ('a photo missing', r'images lacks 1 of the 60 photos dataset_flickr8k.json names \(first: lost.jpg\)$'),
])
def test_a_folder_that_is_not_flickr8k_is_one_line_naming_what_is_missing(folder, tmp_path, capsys, damage,
                                                                            message):
    broken = tmp_path / 'broken'
    if damage != 'no folder':
        broken.mkdir()
        os.symlink(folder / flickr8k.IMAGES_DIR, broken / flickr8k.IMAGES_DIR)
    if damage == 'a photo missing':
        document = json.loads((folder / flickr8k.CAPTIONS_FILE).read_text())
        document['images'][7]['filename'] = 'lost.jpg'
        (broken / flickr8k.CAPTIONS_FILE).write_text(json.dumps(document))
    assert cli.main(['flickr8k', '--flickr8k', str(broken), '--output', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'img2txt flickr8k: error: ') and '\n' not in err
    assert re.search(message, err), err
    assert not (tmp_path / 'out').exists()


def test_the_table_puts_the_published_figures_beside_the_runs():
    scores = {name: 0.5 for name in evaluation.METRICS}
    lines = recipe.table([('self-critical (x)', scores)], images=1000).splitlines()
    assert lines[0].startswith('Flickr8k val, 1000 photos')
    assert lines[1].split()[-7:] == ['0.500'] * 7
    xu = next(line for line in lines if 'Xu et al.' in line).split()[-7:]
    assert xu == ['0.670', '-', '-', '0.213', '0.203', '-', '-']
