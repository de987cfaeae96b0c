"""img2txt evaluate: a real captioner on real photos, from a dataset and from a preprocess output."""
import json
import os

import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from captioner_data import CAPTIONS, encoded, photo, train_and_export
from img2txt.jobs import cli
from img2txt.model import evaluation
from img2txt.model.serving import export
from img2txt.pipelines import evaluate, preprocess
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import captioner, evaluation as schema, manifest

# Reference captions per photo: the one the model learnt, and another way to say it.
REFERENCES = {name: [caption, f'a photo of {caption}'] for name, caption in CAPTIONS.items()}
SUBSETS = {'coffee': 'things', 'rocket': 'things', 'chelsea': 'living', 'astronaut': 'living'}
MENTIONS = {'coffee': ['cup of coffee'], 'rocket': ['red rocket'], 'chelsea': ['cat'], 'astronaut': []}


@pytest.fixture(scope='module')
def model(small_captioner):
    """(export_dir, model_id) of a small captioner trained on the four photos."""
    return small_captioner


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """A JSONL dataset: two photos in train, the four photos' copies and a missing file in test."""
    root = tmp_path_factory.mktemp('dataset')
    (root / 'images').mkdir()
    records = []
    for name in CAPTIONS:
        for split in ('train', 'test') if name in ('coffee', 'chelsea') else ('test',):
            file_name = f'{name}-{split}.jpg'
            (root / 'images' / file_name).write_bytes(encoded(photo(name), 'JPEG', quality=90))
            records.append({'image': file_name, 'captions': REFERENCES[name], 'split': split,
                            'subset': SUBSETS[name], 'mentions': MENTIONS[name]})
    records.append({'image': 'lost.jpg', 'captions': ['a lost photo'], 'split': 'test', 'subset': 'things'})
    path = root / 'captions.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return str(path), str(root / 'images')


def test_evaluate_scores_each_subset_and_writes_every_image(model, dataset, tmp_path):
    captions, images = dataset
    document = evaluate.run_config(evaluate.EvaluateConfig(
        model=model[0], output=str(tmp_path), dataset='jsonl', captions=captions, images=images, meteor=False))
    subsets = document[schema.SUBSETS]
    assert {name: values[schema.IMAGES_COUNT] for name, values in subsets.items()} == {
        'all': 4, 'things': 2, 'living': 2}
    # Each caption is one of its references word for word.
    assert subsets['all']['BLEU-4'] == pytest.approx(1.0)
    assert subsets['all']['METEOR'] == schema.METEOR_SKIPPED
    assert subsets['things'][schema.MENTIONS_RIGHT] == 0.5   # "cup of coffee" yes, "red rocket" no
    assert subsets['living'][schema.MENTIONS_RIGHT] == 1.0   # "cat"; astronaut has nothing to mention
    assert document[schema.NOT_SCORED] == 1
    assert document[schema.NOT_SCORED_EXAMPLES][0][schema.IMAGE_ID] == 'lost.jpg'
    assert json.loads(open(tmp_path / schema.METRICS_FILE).read()) == document

    rows = {row[schema.IMAGE_ID]: row for row in pq.read_table(tmp_path / schema.IMAGES_FILE).to_pylist()}
    assert sorted(rows) == sorted(f'{name}-test.jpg' for name in CAPTIONS)
    assert rows['rocket-test.jpg'][schema.CAPTION] == CAPTIONS['rocket']
    assert rows['rocket-test.jpg'][schema.NAMES_MENTIONS] is False
    assert rows['astronaut-test.jpg'][schema.NAMES_MENTIONS] is None
    corpus, per_image = evaluation.score({i: r[schema.CAPTION] for i, r in rows.items()},
                                         {i: r[schema.REFERENCES] for i, r in rows.items()}, meteor=False)
    assert {i: r[schema.IMAGE_CIDER_D] for i, r in rows.items()} == pytest.approx(per_image)
    assert {k: v for k, v in subsets['all'].items() if k in corpus} == corpus


def test_evaluate_from_a_preprocess_output_gives_the_same_captions(model, dataset, tmp_path, capsys):
    captions, images = dataset
    data = str(tmp_path / 'data')
    preprocess.run_config(preprocess.PreprocessConfig(dataset='jsonl', captions=captions, images=images, output=data,
                                                      min_word_count=1))
    assert cli.main(['evaluate', '--model', model[0], '--data', data, '--output', str(tmp_path / 'eval'),
                     '--no-meteor']) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ['subset', 'images', *schema.METRICS, schema.MENTIONS_RIGHT]
    assert out.splitlines()[1].split()[:3] == ['all', '4', '1.000']
    assert '1 images of the split could not be captioned' in out
    rows = pq.read_table(os.path.join(tmp_path, 'eval', schema.IMAGES_FILE)).to_pylist()
    assert {row[schema.IMAGE_ID]: row[schema.CAPTION] for row in rows} == {
        f'{name}-test.jpg': caption for name, caption in CAPTIONS.items()}


@pytest.mark.parametrize('spatial_layer', ['head', 'stride16'])
def test_an_attention_captioner_evaluates_from_the_stored_spatial_maps(dataset, tmp_path, spatial_layer, training_seed):
    """The maps preprocess stored and the export computes in-graph from JPEG bytes are the same layer's."""
    captions, images = dataset
    export_dir = str(tmp_path / 'attention')
    train_and_export(export_dir, seed=training_seed, decoder=decoder_names.ATTENTION, spatial_layer=spatial_layer)
    data = str(tmp_path / 'data')
    result = preprocess.run_config(preprocess.PreprocessConfig(
        dataset='jsonl', captions=captions, images=images, output=data, min_word_count=1, spatial_features=True,
        spatial_layer=spatial_layer))
    assert result[manifest.ENCODER][manifest.ENCODER_SPATIAL_LAYER] == spatial_layer
    assert result[manifest.ENCODER][manifest.ENCODER_SPATIAL_SHAPE] == {'head': [7, 7, 1280],
                                                                         'stride16': [14, 14, 240]}[spatial_layer]
    document = evaluate.run_config(evaluate.EvaluateConfig(model=export_dir, output=str(tmp_path / 'eval'), data=data,
                                                           meteor=False))
    rows = pq.read_table(os.path.join(tmp_path, 'eval', schema.IMAGES_FILE)).to_pylist()
    assert {row[schema.IMAGE_ID]: row[schema.CAPTION] for row in rows} == {
        f'{name}-test.jpg': caption for name, caption in CAPTIONS.items()}
    assert document[schema.SUBSETS]['all']['BLEU-4'] == pytest.approx(1.0)
    # From JPEG bytes, the export's own decoder and encoder.
    loaded = export.load_captioner(export_dir)
    files = sorted(os.listdir(images))
    outputs = loaded.signatures[captioner.CAPTION_IMAGES](
        **{captioner.IMAGES: tf.constant([open(os.path.join(images, f), 'rb').read() for f in files])})
    best = [texts[0] for texts in export.captions_text(outputs[captioner.CAPTIONS])]
    assert best == [CAPTIONS[f.split('-')[0]] for f in files]


def test_bad_options_are_one_line_errors(model, tmp_path, capsys):
    assert cli.main(['evaluate', '--model', model[0], '--output', str(tmp_path)]) == 2
    assert 'nothing to evaluate' in capsys.readouterr().err
