"""The training TFRecord format: one ``tf.train.Example`` per image.

Preprocess writes these and training reads them; nothing else spells the keys.
An image's CNN feature vector is stored once, with all of its captions:

  image/id          bytes    the dataset's image id
  image/features    float    [feature_dim] pooled encoder output (float32), or
  image/features16  bytes    the same vector as little-endian float16 (half the size)
  image/spatial     float    [H * W * C] optional: the feature map that vector pools,
                             row-major [H, W, C] (float32), or
  image/spatial16   bytes    the same map as little-endian float16
  caption/ids       int64    every caption's token ids, concatenated; no start or
                             end tokens (training adds them)
  caption/lengths   int64    [num_captions] how many ids each caption has

Records of one split live in ``<output>/<split>/data-SSSSS-of-NNNNN.tfrecord``
(see ``shard_pattern``); which keys are used, the feature dimension, the
map's [H, W, C] and the vocabulary are in the preprocess manifest.
"""
import dataclasses
import math
import struct

import google_crc32c
import numpy as np

IMAGE_ID = 'image/id'
FEATURES = 'image/features'
FEATURES_FLOAT16 = 'image/features16'
SPATIAL = 'image/spatial'
SPATIAL_FLOAT16 = 'image/spatial16'
CAPTION_IDS = 'caption/ids'
CAPTION_LENGTHS = 'caption/lengths'

# Storage types of the feature vector and of the spatial map.
FEATURE_DTYPES = ('float32', 'float16')

SHARD_SUFFIX = '.tfrecord'


def shard_name(split, index, num_shards):
    """Relative path of one shard of a split, e.g. ``train/data-00003-of-00008.tfrecord``."""
    return f'{split}/data-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}'


def shard_pattern(split):
    """Glob matching every shard of a split, relative to the preprocess output."""
    return f'{split}/data-*-of-*{SHARD_SUFFIX}'


@dataclasses.dataclass(frozen=True)
class _FloatArray:
    """A float array stored flat under one of two keys: float32 as a FloatList, float16 as little-endian bytes."""

    float32_key: str
    float16_key: str

    def feature(self, values, dtype):
        """``{key: tf.train.Feature}`` holding ``values`` flattened in ``dtype``."""
        import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
        values = np.asarray(values).reshape(-1)
        if dtype == 'float16':
            return {self.float16_key: _bytes([values.astype('<f2').tobytes()])}
        return {self.float32_key: tf.train.Feature(float_list=tf.train.FloatList(value=values.astype(np.float32)))}

    def spec(self, size, dtype):
        """The parse spec of a ``size``-long array stored in ``dtype``."""
        import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
        if dtype == 'float16':
            return {self.float16_key: tf.io.FixedLenFeature([], tf.string)}
        return {self.float32_key: tf.io.FixedLenFeature([size], tf.float32)}

    def parse(self, parsed, size, dtype):
        """The float32 ``[size]`` array from a dict parsed with ``spec``."""
        import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
        if dtype == 'float16':
            values = tf.cast(tf.io.decode_raw(parsed[self.float16_key], tf.float16, little_endian=True), tf.float32)
            return tf.ensure_shape(values, [size])
        return parsed[self.float32_key]


_FEATURES = _FloatArray(FEATURES, FEATURES_FLOAT16)
_SPATIAL = _FloatArray(SPATIAL, SPATIAL_FLOAT16)


def _check_dtype(argument, dtype):
    if dtype not in FEATURE_DTYPES:
        raise ValueError(f'{argument} must be one of {FEATURE_DTYPES}, got {dtype!r}')


def encode(image_id, features, captions, feature_dtype='float32', spatial=None, spatial_dtype='float16'):
    """Serialises one image's record.

    Args:
      image_id: the dataset's image id (str).
      features: 1-D float array, the encoder's pooled output.
      captions: a list of token-id lists, one per caption, without start/end tokens.
      feature_dtype: 'float32' or 'float16' storage for the features.
      spatial: None, or the float ``[H, W, C]`` feature map that ``features`` pools.
      spatial_dtype: 'float32' or 'float16' storage for ``spatial``.

    Returns:
      The serialised ``tf.train.Example`` bytes.
    """
    import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
    _check_dtype('feature_dtype', feature_dtype)
    _check_dtype('spatial_dtype', spatial_dtype)
    features = np.asarray(features)
    if features.ndim != 1:
        raise ValueError(f'features must be a vector, got shape {features.shape}')
    feature = _FEATURES.feature(features, feature_dtype)
    if spatial is not None:
        spatial = np.asarray(spatial)
        if spatial.ndim != 3:
            raise ValueError(f'spatial must be a [H, W, C] map, got shape {spatial.shape}')
        feature.update(_SPATIAL.feature(spatial, spatial_dtype))
    ids = [int(i) for caption in captions for i in caption]
    feature.update({
        IMAGE_ID: _bytes([image_id.encode('utf-8')]),
        CAPTION_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        CAPTION_LENGTHS: tf.train.Feature(int64_list=tf.train.Int64List(value=[len(c) for c in captions])),
    })
    # Deterministic: map entries in key order; otherwise their order changes from process to process.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _bytes(values):
    import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def frame(record):
    """One record in TFRecord file framing: length, masked CRC32C of the length, data, masked CRC32C of the data.

    Lets any byte stream (a Beam ``FileSystems`` file on gs://, say) be written
    as a TFRecord file that ``tf.data.TFRecordDataset`` reads.
    """
    import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
    length = struct.pack('<Q', len(record))
    return b''.join((length, struct.pack('<I', _masked_crc(length)), record, struct.pack('<I', _masked_crc(record))))


def _masked_crc(data):
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def feature_spec(feature_dim, feature_dtype='float32', spatial_shape=None, spatial_dtype='float16'):
    """The ``tf.io.parse_example`` spec for records written with ``encode``.

    The spatial map is in the spec only when ``spatial_shape`` (H, W, C) is
    given; otherwise a record's map, if it has one, is not read.
    """
    import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
    _check_dtype('feature_dtype', feature_dtype)
    spec = {
        IMAGE_ID: tf.io.FixedLenFeature([], tf.string),
        CAPTION_IDS: tf.io.VarLenFeature(tf.int64),
        CAPTION_LENGTHS: tf.io.VarLenFeature(tf.int64),
        **_FEATURES.spec(feature_dim, feature_dtype),
    }
    if spatial_shape is not None:
        _check_dtype('spatial_dtype', spatial_dtype)
        spec.update(_SPATIAL.spec(math.prod(spatial_shape), spatial_dtype))
    return spec


def parse(serialized, feature_dim, feature_dtype='float32', spatial_shape=None, spatial_dtype='float16'):
    """Parses one serialised record (a scalar string tensor) with TensorFlow ops.

    Returns a dict with ``image_id`` (string scalar), ``features`` (float32
    ``[feature_dim]``) and ``captions`` (int64 ``tf.RaggedTensor``
    ``[num_captions, None]``); with ``spatial_shape`` (H, W, C), also
    ``spatial``, the map as float32 ``[H * W, C]``: one row per grid cell, row-major,
    as an attention decoder reads it. Usable inside ``tf.data`` pipelines.
    """
    import tensorflow as tf  # here, so that reading a manifest needs no TensorFlow
    parsed = tf.io.parse_single_example(
        serialized, feature_spec(feature_dim, feature_dtype, spatial_shape, spatial_dtype))
    captions = tf.RaggedTensor.from_row_lengths(
        tf.sparse.to_dense(parsed[CAPTION_IDS]), tf.sparse.to_dense(parsed[CAPTION_LENGTHS]))
    result = {'image_id': parsed[IMAGE_ID], 'features': _FEATURES.parse(parsed, feature_dim, feature_dtype),
              'captions': captions}
    if spatial_shape is not None:
        height, width, channels = spatial_shape
        result['spatial'] = tf.reshape(
            _SPATIAL.parse(parsed, height * width * channels, spatial_dtype), [height * width, channels])
    return result
