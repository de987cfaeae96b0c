"""The training record format round-trips through TensorFlow's parser."""
import fnmatch

import numpy as np
import pytest
import tensorflow as tf

from img2txt.schemas import training_records


@pytest.mark.parametrize('dtype, tolerance', [('float32', 0), ('float16', 1e-3)])
def test_record_parses_back_to_its_features_and_captions(dtype, tolerance):
    features = np.linspace(-3, 3, 16, dtype=np.float32)
    captions = [[5, 9, 4], [7], [4, 4, 8, 6, 11]]
    serialized = training_records.encode('COCO_val2014_000000000042', features, captions, dtype)
    parsed = training_records.parse(tf.constant(serialized), feature_dim=16, feature_dtype=dtype)
    assert parsed['image_id'].numpy() == b'COCO_val2014_000000000042'
    np.testing.assert_allclose(parsed['features'].numpy(), features, atol=tolerance * 3)
    assert parsed['features'].dtype == tf.float32
    assert parsed['captions'].to_list() == captions


def test_parse_works_inside_tf_data():
    records = [training_records.encode(f'img{i}', np.full(4, i, np.float32), [[i + 4] * (i + 1)]) for i in range(3)]
    dataset = tf.data.Dataset.from_tensor_slices(records).map(lambda r: training_records.parse(r, 4))
    assert [r['captions'].to_list() for r in dataset] == [[[4]], [[5, 5]], [[6, 6, 6]]]


def test_float16_halves_the_feature_bytes():
    features = np.ones(1280, np.float32)
    full = training_records.encode('a', features, [[4]], 'float32')
    half = training_records.encode('a', features, [[4]], 'float16')
    assert len(half) < 0.55 * len(full)


def test_wrong_feature_dim_is_an_error():
    serialized = training_records.encode('a', np.ones(8, np.float32), [[4]])
    with pytest.raises(tf.errors.InvalidArgumentError):
        training_records.parse(tf.constant(serialized), feature_dim=16)


def test_bad_arguments():
    with pytest.raises(ValueError, match='feature_dtype'):
        training_records.encode('a', np.ones(4), [[4]], 'int8')
    with pytest.raises(ValueError, match='vector'):
        training_records.encode('a', np.ones((2, 2)), [[4]])


def test_shard_names_match_their_pattern():
    assert training_records.shard_name('train', 3, 8) == 'train/data-00003-of-00008.tfrecord'
    assert fnmatch.fnmatch(training_records.shard_name('val', 0, 1), training_records.shard_pattern('val'))


def test_framed_records_read_back_with_tf_data(tmp_path):
    records = [training_records.encode(f'img{i}', np.full(4, i, np.float32), [[i + 4]]) for i in range(3)]
    path = tmp_path / 'shard.tfrecord'
    path.write_bytes(b''.join(training_records.frame(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records
