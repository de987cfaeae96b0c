"""The training input pipeline over real TFRecord shards and a real manifest."""
import collections
import json

import numpy as np
import pytest
import tensorflow as tf

from img2txt.model.training import input_pipeline
from img2txt.schemas import manifest, vocabulary
from img2txt.schemas.vocabulary import END_ID, PAD_ID, START_ID
from training_data import random_images, write_training_data


def batches(dataset):
    """A dataset's batches as numpy: [(features, input_ids, target_ids), ...]."""
    return [(f.numpy(), i.numpy(), t.numpy()) for (f, i), t in dataset]


def examples(dataset):
    """(rounded features, caption words) per example, in order: the targets up to END."""
    result = []
    for features, _, target_ids in batches(dataset):
        for f, targets in zip(features, target_ids):
            words = [int(w) for w in targets]
            result.append((tuple(np.round(f, 4)), tuple(words[:words.index(END_ID)])))
    return result


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """10 train images with 3 captions each over 3 shards, 4 val images with 2."""
    return write_training_data(tmp_path_factory.mktemp('data'), {
        'train': random_images(10, 3), 'val': random_images(4, 2, seed=1, prefix='val')}, shards=3)


def test_batches_are_framed_padded_and_shifted(data):
    dataset = input_pipeline.make_dataset(data, 'val', 3, training=False)
    spec = dataset.element_spec
    assert spec[0][0].shape.as_list() == [None, 8] and spec[0][0].dtype == tf.float32
    assert spec[0][1].dtype == tf.int32 and spec[1].dtype == tf.int32
    captions = {tuple(c) for _, _, cs in random_images(4, 2, seed=1, prefix='val') for c in cs}
    seen = set()
    for features, input_ids, target_ids in batches(dataset):
        assert features.shape[0] == input_ids.shape[0] == target_ids.shape[0] <= 3
        assert input_ids.shape == target_ids.shape
        # Padded to the batch's longest caption: some row has no padding.
        assert (target_ids != PAD_ID).all(axis=1).any()
        for inputs, targets in zip(input_ids, target_ids):
            length = int((targets != PAD_ID).sum())
            words = targets[:length - 1]
            assert inputs[0] == START_ID and targets[length - 1] == END_ID
            np.testing.assert_array_equal(inputs[1:length], words)
            assert set(inputs[length:]) <= {END_ID, PAD_ID} and not targets[length:].any()
            seen.add(tuple(int(w) for w in words))
    assert seen == captions


def test_all_captions_mode_yields_every_caption_once_per_epoch(data):
    dataset = input_pipeline.make_dataset(data, 'train', 4, training=True, captions_per_image='all', num_epochs=2)
    words = [w for _, w in examples(dataset)]
    expected = [tuple(c) for _, _, cs in random_images(10, 3) for c in cs]
    assert len(words) == 60
    assert sorted(words[:30]) == sorted(expected) == sorted(words[30:])
    assert words[:30] != words[30:]  # Reshuffled each epoch.


def test_one_caption_mode_covers_every_caption_and_is_reproducible(data):
    def run(seed):
        return examples(input_pipeline.make_dataset(
            data, 'train', 4, training=True, captions_per_image='one', num_epochs=6, seed=seed))

    images = random_images(10, 3)
    caption_image = {tuple(c): image_id for image_id, _, cs in images for c in cs}
    first = run(seed=3)
    assert len(first) == 60
    per_epoch = [first[i:i + 10] for i in range(0, 60, 10)]
    for epoch in per_epoch:  # Every image once per epoch.
        assert sorted(caption_image[w] for _, w in epoch) == [image_id for image_id, _, _ in images]
    # Each cycle of 3 epochs uses each caption of each image once.
    for cycle in (per_epoch[:3], per_epoch[3:]):
        assert sorted(w for epoch in cycle for _, w in epoch) == sorted(caption_image)
    assert run(seed=3) == first
    assert run(seed=4) != first


def test_resuming_at_an_example_continues_the_same_stream(data):
    def stream(start_example):
        return examples(input_pipeline.make_dataset(
            data, 'train', 7, training=True, captions_per_image='all', num_epochs=3, seed=5,
            start_example=start_example))

    full = stream(0)
    assert len(full) == 90
    assert stream(44) == full[44:]
    assert stream(60) == full[60:]


def test_float16_records(tmp_path):
    images = random_images(5, 2, feature_dim=16)
    data = write_training_data(tmp_path, {'train': images}, feature_dtype='float16')
    got = examples(input_pipeline.make_dataset(data, 'train', 10, training=False))
    expected = collections.Counter((tuple(np.round(f.astype(np.float16).astype(np.float32), 4)), tuple(c))
                                   for _, f, cs in images for c in cs)
    assert collections.Counter(got) == expected


@pytest.mark.parametrize('spatial_dtype', ['float32', 'float16'])
def test_spatial_maps_replace_the_vectors(tmp_path, spatial_dtype):
    images = random_images(5, 2, feature_dim=4, grid=(2, 3))
    data = write_training_data(tmp_path, {'train': images}, spatial_dtype=spatial_dtype)
    assert input_pipeline.spatial_grid(input_pipeline.read_manifest(data), data) == (6, 4)
    # Each caption's image map as stored: one row per grid cell, row-major.
    maps = {tuple(c): f.astype(spatial_dtype).astype(np.float32).reshape(6, 4) for _, f, cs in images for c in cs}
    found = batches(input_pipeline.make_dataset(data, 'train', 4, training=True, spatial=True, num_epochs=2))
    assert [f.shape for f, _, _ in found] == [(4, 6, 4)] * 5
    for features, _, target_ids in found:
        for cells, targets in zip(features, target_ids):
            words = [int(w) for w in targets]
            np.testing.assert_array_equal(cells, maps[tuple(words[:words.index(END_ID)])])
    # Without spatial, the same records give the pooled vectors.
    pooled = examples(input_pipeline.make_dataset(data, 'train', 10, training=False))
    assert collections.Counter(pooled) == collections.Counter(
        (tuple(np.round(f.mean(axis=(0, 1)), 4)), tuple(c)) for _, f, cs in images for c in cs)


def test_manifest_helpers(data):
    document = input_pipeline.read_manifest(data)
    assert input_pipeline.examples_per_epoch(document, 'train', 'all') == 30
    assert input_pipeline.examples_per_epoch(document, 'train', 'one') == 10
    assert input_pipeline.has_split(document, 'val') and not input_pipeline.has_split(document, 'test')
    vocab = input_pipeline.read_vocabulary(data, document)
    assert len(vocab) == 20 and vocab[:vocabulary.NUM_RESERVED] == list(vocabulary.RESERVED_TOKENS)


def test_clear_errors(data, tmp_path):
    with pytest.raises(FileNotFoundError, match=f'{tmp_path} has no manifest.json'):
        input_pipeline.make_dataset(str(tmp_path), 'train', 4, training=True)
    with pytest.raises(ValueError, match=r"no 'test' split; it has \['train', 'val'\]"):
        input_pipeline.make_dataset(data, 'test', 4, training=False)
    with pytest.raises(ValueError, match='captions_per_image'):
        input_pipeline.make_dataset(data, 'train', 4, training=True, captions_per_image='some')
    with pytest.raises(ValueError, match=f'^{data} has no spatial feature maps, .*--spatial-features$'):
        input_pipeline.make_dataset(data, 'train', 4, training=True, spatial=True)

    document = input_pipeline.read_manifest(data)
    (tmp_path / manifest.FILE_NAME).write_text(json.dumps({**document, manifest.JOB: 'caption'}))
    with pytest.raises(ValueError, match="expected a preprocess manifest, got job='caption'"):
        input_pipeline.make_dataset(str(tmp_path), 'train', 4, training=True)
    document[manifest.SPLITS]['train']['pattern'] = 'train/missing-*.tfrecord'
    (tmp_path / manifest.FILE_NAME).write_text(json.dumps(document))
    with pytest.raises(FileNotFoundError, match='no train records'):
        input_pipeline.make_dataset(str(tmp_path), 'train', 4, training=True)
