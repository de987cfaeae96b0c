"""The training TFRecord format: one ``tf.train.Example`` per image.

Preprocess writes these and training reads them; nothing else spells the keys.
An image's CNN feature vector is stored once, with all of its captions:

  image/id          bytes    the dataset's image id
  image/features    float    [feature_dim] pooled encoder output (float32), or
  image/features16  bytes    the same vector as little-endian float16 (half the size)
  caption/ids       int64    every caption's token ids, concatenated; no start or
                             end tokens (training adds them)
  caption/lengths   int64    [num_captions] how many ids each caption has

Records of one split live in ``<output>/<split>/data-SSSSS-of-NNNNN.tfrecord``
(see ``shard_pattern``); which feature key is used, the feature dimension and
the vocabulary are in the preprocess manifest.
"""
import struct

import google_crc32c
import numpy as np
import tensorflow as tf

IMAGE_ID = 'image/id'
FEATURES = 'image/features'
FEATURES_FLOAT16 = 'image/features16'
CAPTION_IDS = 'caption/ids'
CAPTION_LENGTHS = 'caption/lengths'

FEATURE_DTYPES = ('float32', 'float16')

SHARD_SUFFIX = '.tfrecord'


def shard_name(split, index, num_shards):
    """Relative path of one shard of a split, e.g. ``train/data-00003-of-00008.tfrecord``."""
    return f'{split}/data-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}'


def shard_pattern(split):
    """Glob matching every shard of a split, relative to the preprocess output."""
    return f'{split}/data-*-of-*{SHARD_SUFFIX}'


def encode(image_id, features, captions, feature_dtype='float32'):
    """Serialises one image's record.

    Args:
      image_id: the dataset's image id (str).
      features: 1-D float array, the encoder's pooled output.
      captions: a list of token-id lists, one per caption, without start/end tokens.
      feature_dtype: 'float32' or 'float16' storage for the features.

    Returns:
      The serialised ``tf.train.Example`` bytes.
    """
    if feature_dtype not in FEATURE_DTYPES:
        raise ValueError(f'feature_dtype must be one of {FEATURE_DTYPES}, got {feature_dtype!r}')
    features = np.asarray(features)
    if features.ndim != 1:
        raise ValueError(f'features must be a vector, got shape {features.shape}')
    if feature_dtype == 'float16':
        feature = {FEATURES_FLOAT16: _bytes([features.astype('<f2').tobytes()])}
    else:
        feature = {FEATURES: tf.train.Feature(float_list=tf.train.FloatList(value=features.astype(np.float32)))}
    ids = [int(i) for caption in captions for i in caption]
    feature.update({
        IMAGE_ID: _bytes([image_id.encode('utf-8')]),
        CAPTION_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        CAPTION_LENGTHS: tf.train.Feature(int64_list=tf.train.Int64List(value=[len(c) for c in captions])),
    })
    # Deterministic: map entries in key order; otherwise their order changes from process to process.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def frame(record):
    """One record in TFRecord file framing: length, masked CRC32C of the length, data, masked CRC32C of the data.

    Lets any byte stream (a Beam ``FileSystems`` file on gs://, say) be written
    as a TFRecord file that ``tf.data.TFRecordDataset`` reads.
    """
    length = struct.pack('<Q', len(record))
    return b''.join((length, struct.pack('<I', _masked_crc(length)), record, struct.pack('<I', _masked_crc(record))))


def _masked_crc(data):
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def feature_spec(feature_dim, feature_dtype='float32'):
    """The ``tf.io.parse_example`` spec for records written with ``encode``."""
    if feature_dtype == 'float16':
        features = {FEATURES_FLOAT16: tf.io.FixedLenFeature([], tf.string)}
    elif feature_dtype == 'float32':
        features = {FEATURES: tf.io.FixedLenFeature([feature_dim], tf.float32)}
    else:
        raise ValueError(f'feature_dtype must be one of {FEATURE_DTYPES}, got {feature_dtype!r}')
    return {
        IMAGE_ID: tf.io.FixedLenFeature([], tf.string),
        CAPTION_IDS: tf.io.VarLenFeature(tf.int64),
        CAPTION_LENGTHS: tf.io.VarLenFeature(tf.int64),
        **features,
    }


def parse(serialized, feature_dim, feature_dtype='float32'):
    """Parses one serialised record (a scalar string tensor) with TensorFlow ops.

    Returns a dict with ``image_id`` (string scalar), ``features`` (float32
    ``[feature_dim]``) and ``captions`` (int64 ``tf.RaggedTensor``
    ``[num_captions, None]``). Usable inside ``tf.data`` pipelines.
    """
    parsed = tf.io.parse_single_example(serialized, feature_spec(feature_dim, feature_dtype))
    if feature_dtype == 'float16':
        features = tf.cast(tf.io.decode_raw(parsed[FEATURES_FLOAT16], tf.float16, little_endian=True), tf.float32)
        features = tf.ensure_shape(features, [feature_dim])
    else:
        features = parsed[FEATURES]
    captions = tf.RaggedTensor.from_row_lengths(
        tf.sparse.to_dense(parsed[CAPTION_IDS]), tf.sparse.to_dense(parsed[CAPTION_LENGTHS]))
    return {'image_id': parsed[IMAGE_ID], 'features': features, 'captions': captions}
