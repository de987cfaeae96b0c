"""The preprocess job end to end: real images, real encoder, tf.Transform, TFRecords, Parquet."""
import glob
import json
import os
import re

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
from PIL import Image

from img2txt.jobs import cli
from img2txt.model.networks import encoders
from img2txt.model.serving import image_decoding
from img2txt.model.tokenizer import tokenize
from img2txt.pipelines import preprocess
from img2txt.schemas import manifest, training_records, vocabulary
from dataflow_flags import DATAFLOW_DRY_RUN

COLOURS = {'red': (220, 30, 30), 'blue': (30, 30, 220), 'green': (30, 200, 30)}


def write_dataset(root):
    """A JSONL dataset: 10 train, 2 val, 1 test images; one missing and one corrupt image; one bad caption.

    Train captions use 'square' 20 times, each colour 3-4 times, 'rare' 3
    times (below min count 4); 'zebra' is frequent but only in val.
    """
    images = root / 'images'
    images.mkdir(parents=True)
    records = []
    for i in range(13):
        colour = list(COLOURS)[i % 3]
        Image.new('RGB', (64 + 8 * i, 48), COLOURS[colour]).save(images / f'{i:02d}.jpg', quality=95)
        split = 'train' if i < 10 else 'val' if i < 12 else 'test'
        captions = [f'A {colour} square.', f'a {colour} square on {"a rare" if i < 3 else "the"} background']
        if split == 'val':
            captions.append('zebra zebra zebra zebra zebra')
        records.append({'image': f'{i:02d}.jpg', 'captions': captions, 'split': split})
    records.append({'image': 'missing.jpg', 'captions': ['a red square'], 'split': 'train'})
    (images / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    records.append({'image': 'corrupt.jpg', 'captions': ['a blue square', '  ...  '], 'split': 'train'})
    captions = root / 'captions.jsonl'
    captions.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return captions, images, records


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('dataset'))


@pytest.fixture(scope='module')
def local_run(dataset, tmp_path_factory):
    captions, images, _ = dataset
    config = preprocess.PreprocessConfig(dataset='jsonl', captions=str(captions), images=str(images),
                                         output=str(tmp_path_factory.mktemp('out')))
    return config, preprocess.run_config(config)


def shard_paths(output, split):
    return sorted(glob.glob(os.path.join(output, training_records.shard_pattern(split))))


def read_split(output, split, feature_dim, dtype='float32', **spatial):
    """{image id: parsed record}; ``spatial`` are ``parse``'s spatial_shape and spatial_dtype."""
    return {r['image_id'].numpy().decode(): r for r in tf.data.TFRecordDataset(shard_paths(output, split)).map(
        lambda s: training_records.parse(s, feature_dim, dtype, **spatial))}


def test_counts_add_up_and_failures_are_named(local_run):
    config, result = local_run
    assert result[manifest.COUNTS] == {
        manifest.IMAGES_READ: 15, manifest.IMAGES_WRITTEN: 13, manifest.IMAGES_FAILED: 2,
        manifest.CAPTIONS_READ: 30, manifest.CAPTIONS_WRITTEN: 28, manifest.CAPTIONS_FAILED: 2,
        manifest.DATASET_ERRORS: 1, manifest.ERROR_RECORDS: 3}
    assert {s: (v[manifest.SPLIT_IMAGES], v[manifest.SPLIT_CAPTIONS], v[manifest.SPLIT_SHARDS])
            for s, v in result[manifest.SPLITS].items()} == {'train': (10, 20, 1), 'val': (2, 6, 1), 'test': (1, 2, 1)}
    assert result[manifest.ENCODER][manifest.ENCODER_FEATURE_DIM] == 1280
    [errors_file] = glob.glob(os.path.join(config.output, result[manifest.ERRORS]))
    errors = pq.read_table(errors_file).to_pylist()
    assert sorted((e['stage'], os.path.basename(e['input']), e['error_type']) for e in errors) == [
        ('decode', 'corrupt.jpg', 'CorruptImageError'),
        ('parse', 'corrupt.jpg#1', 'EmptyCaptionError'),
        ('read', 'missing.jpg', 'FileNotFoundError')]
    on_disk = json.loads(open(os.path.join(config.output, manifest.FILE_NAME)).read())
    assert manifest.validate(on_disk, 'preprocess') == result


def test_vocabulary_comes_from_train_only_with_min_count(local_run):
    config, result = local_run
    words = vocabulary.read(os.path.join(config.output, vocabulary.VOCABULARY_FILE))
    assert words[:vocabulary.NUM_RESERVED] == list(vocabulary.RESERVED_TOKENS)
    learned = words[vocabulary.NUM_RESERVED:]
    assert learned[:2] == ['a', 'square']  # most frequent first
    assert {'red', 'blue', 'green', 'on', 'background', 'the'} <= set(learned)
    assert 'rare' not in learned and 'zebra' not in learned and '.' not in learned
    assert result[manifest.VOCABULARY][manifest.VOCABULARY_SIZE] == len(words)


def test_records_parse_back_into_the_original_captions(local_run, dataset):
    config, result = local_run
    _, _, records = dataset
    words = vocabulary.read(os.path.join(config.output, vocabulary.VOCABULARY_FILE))
    known = set(words)
    by_image = {r['image']: r for r in records}
    seen = 0
    for split in ('train', 'val', 'test'):
        for image_id, parsed in read_split(config.output, split, 1280).items():
            expected = [[t if t in known else vocabulary.UNK for t in tokenize(c)] for c in by_image[image_id]['captions']]
            assert [[words[i] for i in caption] for caption in parsed['captions'].to_list()] == expected
            assert by_image[image_id]['split'] == split
            seen += 1
    assert seen == 13


def test_stored_features_are_the_encoders_features(local_run, dataset):
    config, _ = local_run
    _, images, _ = dataset
    encoder = encoders.load(config.encoder)
    parsed = read_split(config.output, 'test', 1280)['12.jpg']
    pixels = image_decoding.decode((images / '12.jpg').read_bytes(), encoder.input_spec)
    np.testing.assert_allclose(parsed['features'].numpy(), encoder.features(pixels[None])[0], rtol=1e-4, atol=1e-4)


def test_multi_processing_runner_writes_identical_shards(local_run, dataset, tmp_path):
    config, _ = local_run
    other = preprocess.PreprocessConfig(**{**vars(config), 'output': str(tmp_path / 'out')})
    preprocess.run_config(other, ['--direct_running_mode=multi_processing', '--direct_num_workers=2'])
    for split in ('train', 'val', 'test'):
        mine = sorted(glob.glob(os.path.join(config.output, training_records.shard_pattern(split))))
        theirs = sorted(glob.glob(os.path.join(other.output, training_records.shard_pattern(split))))
        assert [os.path.basename(p) for p in mine] == [os.path.basename(p) for p in theirs]
        for a, b in zip(mine, theirs):
            assert open(a, 'rb').read() == open(b, 'rb').read(), f'{a} differs from {b}'


def test_spatial_features_are_the_plain_records_plus_the_encoders_map(local_run, dataset, tmp_path):
    config, plain = local_run
    _, images, _ = dataset
    spatial = preprocess.PreprocessConfig(**{**vars(config), 'output': str(tmp_path / 'out'),
                                             'spatial_features': True})
    result = preprocess.run_config(spatial)
    assert plain[manifest.SPATIAL_DTYPE] is None and result[manifest.SPATIAL_DTYPE] == 'float16'
    shape = result[manifest.ENCODER][manifest.ENCODER_SPATIAL_SHAPE]
    assert shape == [7, 7, 1280]

    # Without its map, each record is byte for byte the record written without the option.
    for split in ('train', 'val', 'test'):
        stripped = []
        for serialized in tf.data.TFRecordDataset(shard_paths(spatial.output, split)):
            example = tf.train.Example.FromString(serialized.numpy())
            assert len(example.features.feature.pop(training_records.SPATIAL_FLOAT16).bytes_list.value[0]) == \
                2 * 7 * 7 * 1280
            stripped.append(example.SerializeToString(deterministic=True))
        assert stripped == [r.numpy() for r in tf.data.TFRecordDataset(shard_paths(config.output, split))]

    encoder = encoders.load(config.encoder)
    parsed = read_split(spatial.output, 'test', 1280, spatial_shape=shape, spatial_dtype='float16')['12.jpg']
    pixels = image_decoding.decode((images / '12.jpg').read_bytes(), encoder.input_spec)
    expected = encoder.spatial_features(pixels[None])[0].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(parsed['spatial'].numpy(), expected.reshape(7 * 7, 1280))
    # float16 rounding moves each cell by at most 2^-9 of its value (all lie in [0, 6]).
    np.testing.assert_allclose(parsed['spatial'].numpy().mean(axis=0), parsed['features'].numpy(), atol=6e-3)


def test_squash_stores_the_features_of_the_whole_photo_and_says_so(tmp_path):
    # Panoramas in thirds: the centre crop sees one colour, the squash all three.
    images = tmp_path / 'images'
    images.mkdir()
    records = []
    for i, (left, middle, right) in enumerate([('red', 'green', 'blue'), ('blue', 'red', 'green')]):
        photo = Image.new('RGB', (300, 100), COLOURS[middle])
        photo.paste(COLOURS[left], (0, 0, 100, 100))
        photo.paste(COLOURS[right], (200, 0, 300, 100))
        photo.save(images / f'{i}.png')
        records.append({'image': f'{i}.png', 'captions': [f'{left} {middle} {right}'], 'split': 'train'})
    (tmp_path / 'captions.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    assert cli.main(['preprocess', '--dataset', 'jsonl', '--captions', str(tmp_path / 'captions.jsonl'),
                     '--images', str(images), '--output', str(tmp_path / 'out'), '--min-word-count', '1',
                     '--resize', 'squash']) == 0
    document = json.loads((tmp_path / 'out' / manifest.FILE_NAME).read_text())
    spec = document[manifest.ENCODER][manifest.ENCODER_INPUT_SPEC]
    assert spec['resize_mode'] == 'squash' and document[manifest.OPTIONS]['resize'] == 'squash'
    encoder = encoders.load(resize_mode='squash')
    assert encoder.describe()[manifest.ENCODER_INPUT_SPEC] == spec
    stored = read_split(str(tmp_path / 'out'), 'train', 1280)
    for name in ('0.png', '1.png'):
        data = (images / name).read_bytes()
        features = stored[name]['features'].numpy()
        squashed = encoder.features(image_decoding.decode(data, encoder.input_spec)[None])[0]
        cropped = encoders.load().features(image_decoding.decode(data, encoders.load().input_spec)[None])[0]
        np.testing.assert_allclose(features, squashed, rtol=1e-4, atol=1e-4)
        assert np.abs(features - cropped).max() > 0.1


def test_float16_features_and_sharding(dataset, tmp_path):
    captions, images, _ = dataset
    config = preprocess.PreprocessConfig(dataset='jsonl', captions=str(captions), images=str(images),
                                         output=str(tmp_path / 'out'), feature_dtype='float16',
                                         images_per_shard=4, min_word_count=1, max_caption_length=3)
    result = preprocess.run_config(config)
    assert result[manifest.SPLITS]['train']['shards'] == 3
    assert len(glob.glob(os.path.join(config.output, 'train', '*-of-00003.tfrecord'))) == 3
    train = read_split(config.output, 'train', 1280, 'float16')
    assert len(train) == 10
    assert all(len(c) <= 3 for r in train.values() for c in r['captions'].to_list())
    # The vocabulary sees the truncated captions: 'a red square' survives, 'on ... background' does not.
    learned = vocabulary.read(os.path.join(config.output, vocabulary.VOCABULARY_FILE))[vocabulary.NUM_RESERVED:]
    assert sorted(learned) == ['a', 'blue', 'green', 'red', 'square']


def test_reads_and_writes_gcs(local_run, dataset, gcs, gcs_bucket):
    config, _ = local_run
    captions, images, _ = dataset
    bucket = gcs.bucket(gcs_bucket)
    for path in images.iterdir():
        bucket.blob(f'photos/{path.name}').upload_from_filename(str(path))
    bucket.blob('captions.jsonl').upload_from_filename(str(captions))
    remote = preprocess.PreprocessConfig(dataset='jsonl', captions=f'gs://{gcs_bucket}/captions.jsonl',
                                         images=f'gs://{gcs_bucket}/photos', output=f'gs://{gcs_bucket}/out')
    result = preprocess.run_config(remote)
    assert result[manifest.COUNTS][manifest.IMAGES_WRITTEN] == 13
    names = {blob.name for blob in bucket.list_blobs(prefix='out/')}
    assert {'out/manifest.json', 'out/vocab.txt', 'out/transform_fn/saved_model.pb',
            'out/train/data-00000-of-00001.tfrecord'} <= names
    assert len([n for n in names if n.startswith('out/errors/')]) == 1
    # Records hold image ids, not paths, so the same dataset gives the same bytes wherever it lives.
    local_shard = open(os.path.join(config.output, 'train', 'data-00000-of-00001.tfrecord'), 'rb').read()
    assert bucket.blob('out/train/data-00000-of-00001.tfrecord').download_as_bytes() == local_shard


def test_dataflow_dry_run_from_the_cli(dataset, monkeypatch, capsys):
    captions, images, _ = dataset
    runs = []
    run_pipeline = DataflowRunner.run_pipeline

    def recording_run_pipeline(runner, *args, **kwargs):
        """Runs the real dry run and keeps the runner, whose proto_pipeline is the job graph."""
        result = run_pipeline(runner, *args, **kwargs)
        runs.append((runner, result))
        return result

    monkeypatch.setattr(DataflowRunner, 'run_pipeline', recording_run_pipeline)
    # No network here: had tf.Transform reached for gs:// through TensorFlow's GCS client, this would fail.
    status = cli.main(['preprocess', '--dataset', 'jsonl', '--captions', str(captions), '--images', str(images),
                       '--output', 'gs://img2txt-test/preprocessed', *DATAFLOW_DRY_RUN])
    assert status == 0
    assert 'dry run: the job graph was built and validated; nothing ran' in capsys.readouterr().out
    [(runner, result)] = runs
    assert result.state == beam.runners.runner.PipelineState.DONE
    names = {t.unique_name for t in runner.proto_pipeline.components.transforms.values()}
    assert {'ReadDataset', 'DecodeImages', 'Encode', 'AnalyzeTrain', 'Transform', 'WriteShards',
            'WriteErrors', 'WriteCounts'} <= names
    [environment] = runner.proto_pipeline.components.environments.values()
    assert b'workflow.tar.gz' in b''.join(a.role_payload for a in environment.dependencies)


def test_bad_options_are_one_line_errors(dataset, tmp_path):
    captions, images, _ = dataset
    with pytest.raises(ValueError, match='min-word-count'):
        preprocess.PreprocessConfig(dataset='jsonl', captions=str(captions), images=str(images),
                                    output=str(tmp_path), min_word_count=0)
    with pytest.raises(ValueError, match='^--spatial-layer stride16 chooses the map --spatial-features stores; add '
                                         '--spatial-features$'):
        preprocess.PreprocessConfig(dataset='jsonl', captions=str(captions), images=str(images),
                                    output=str(tmp_path), spatial_layer='stride16')
    with pytest.raises(FileNotFoundError, match='nope.jsonl'):
        preprocess.run_config(preprocess.PreprocessConfig(
            dataset='jsonl', captions=str(tmp_path / 'nope.jsonl'), images=str(images), output=str(tmp_path)))


def test_a_local_run_shows_its_progress_while_it_works(dataset, tmp_path, capfd):
    captions, images, _ = dataset
    preprocess.run_config(preprocess.PreprocessConfig(dataset='jsonl', captions=str(captions), images=str(images),
                                                      output=str(tmp_path / 'out')), progress_every_seconds=0.2)
    err = capfd.readouterr().err
    # Every image read ends encoded or failed: 13 encoded, the missing and the corrupt one failed.
    working = [line for line in err.splitlines() if re.fullmatch(
        r'preprocess: \d+/15 images, \d+\.\d images/s, (about \d+ s left|time left not known yet)', line)]
    assert working, err
    assert re.search(r'^preprocess: 15/15 images done in \d+ s, \d+\.\d images/s$', err, re.MULTILINE), err


def test_the_manifests_options_are_read_tolerantly(local_run):
    config, document = local_run
    assert preprocess.PreprocessConfig.from_manifest(document) == config
    # Another version's manifest: an option this one lacks, one it has that the other did not write.
    other = {**document, manifest.OPTIONS: {**document[manifest.OPTIONS], 'future_option': 3}}
    del other[manifest.OPTIONS]['keep_restval']
    read = preprocess.PreprocessConfig.from_manifest(other)
    assert read.keep_restval is False and read.captions == config.captions
    assert other[manifest.OPTIONS]['future_option'] == 3  # kept in the document
    del other[manifest.OPTIONS]['captions']
    with pytest.raises(ValueError, match=r"the preprocess manifest records no \['captions'\] in its options"):
        preprocess.PreprocessConfig.from_manifest(other)
