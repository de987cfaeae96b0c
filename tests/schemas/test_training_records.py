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


@pytest.mark.parametrize('dtype, tolerance', [('float32', 0), ('float16', 1e-3)])
def test_spatial_map_parses_back_one_row_per_grid_cell(dtype, tolerance):
    spatial = np.random.default_rng(0).uniform(0, 6, (2, 3, 4)).astype(np.float32)
    features = spatial.mean(axis=(0, 1))
    serialized = training_records.encode('a', features, [[4]], 'float16', spatial=spatial, spatial_dtype=dtype)
    parsed = training_records.parse(tf.constant(serialized), 4, 'float16', spatial_shape=(2, 3, 4),
                                    spatial_dtype=dtype)
    assert parsed['spatial'].dtype == tf.float32 and parsed['spatial'].shape == (6, 4)
    # Row r is grid cell (r // W, r % W).
    np.testing.assert_allclose(parsed['spatial'].numpy(), spatial.reshape(6, 4), rtol=tolerance)
    np.testing.assert_allclose(parsed['features'].numpy(), features, rtol=1e-3)


def test_a_record_without_a_map_is_unchanged_and_a_map_is_only_read_when_asked_for():
    features = np.linspace(0, 1, 4, dtype=np.float32)
    plain = training_records.encode('a', features, [[4, 5]])
    assert training_records.encode('a', features, [[4, 5]], spatial=None, spatial_dtype='float32') == plain
    with_map = training_records.encode('a', features, [[4, 5]], spatial=np.ones((1, 1, 4)))
    assert training_records.SPATIAL_FLOAT16 not in tf.train.Example.FromString(plain).features.feature
    parsed = training_records.parse(tf.constant(with_map), 4)
    assert 'spatial' not in parsed
    np.testing.assert_array_equal(parsed['features'].numpy(), features)
    assert parsed['captions'].to_list() == [[4, 5]]
    with pytest.raises(tf.errors.InvalidArgumentError):
        training_records.parse(tf.constant(plain), 4, spatial_shape=(1, 1, 4))


def test_float16_map_takes_two_bytes_a_value():
    spatial = np.ones((7, 7, 1280), np.float32)
    plain = training_records.encode('a', np.ones(1280), [[4]], 'float16')
    half = training_records.encode('a', np.ones(1280), [[4]], 'float16', spatial=spatial)
    full = training_records.encode('a', np.ones(1280), [[4]], 'float16', spatial=spatial, spatial_dtype='float32')
    # Beyond the values: the key and a few length prefixes.
    assert 2 * spatial.size <= len(half) - len(plain) < 2 * spatial.size + 64
    assert 4 * spatial.size <= len(full) - len(plain) < 4 * spatial.size + 64


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
    with pytest.raises(ValueError, match='spatial_dtype'):
        training_records.encode('a', np.ones(4), [[4]], spatial=np.ones((1, 1, 4)), spatial_dtype='int8')
    with pytest.raises(ValueError, match=r'\[H, W, C\]'):
        training_records.encode('a', np.ones(4), [[4]], spatial=np.ones((1, 4)))
    with pytest.raises(ValueError, match='spatial_dtype'):
        training_records.feature_spec(4, spatial_shape=(1, 1, 4), spatial_dtype='bfloat16')


def test_shard_names_match_their_pattern():
    assert training_records.shard_name('train', 3, 8) == 'train/data-00003-of-00008.tfrecord'
    assert fnmatch.fnmatch(training_records.shard_name('val', 0, 1), training_records.shard_pattern('val'))


def test_framed_records_read_back_with_tf_data(tmp_path):
    records = [training_records.encode(f'img{i}', np.full(4, i, np.float32), [[i + 4]]) for i in range(3)]
    path = tmp_path / 'shard.tfrecord'
    path.write_bytes(b''.join(training_records.frame(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records
