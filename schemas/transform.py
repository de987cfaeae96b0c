"""The tf.Transform step of preprocess: the columns its ``preprocessing_fn`` reads and writes.

Preprocess saves the transform under its output (``transform_fn/``,
``transformed_metadata/``; ``tft.TFTransformOutput`` reads them). One row per
image; ``raw_feature_spec`` is the input, and the output has the same columns
with ``TOKENS`` replaced by ``CAPTION_IDS``::

  IMAGE_ID          string                  the dataset's image id
  SPLIT             string                  train, val, test, ...
  FEATURES          float [feature_dim]     the encoder's pooled output
  TOKENS            string [num_words]      every caption's words, concatenated (input only)
  CAPTION_IDS       int64 [num_words]       their vocabulary ids (output only)
  CAPTION_LENGTHS   int64 [num_captions]    how many words each caption has

The learned vocabulary is the transform's asset ``VOCABULARY_NAME``.
"""
import tensorflow as tf

IMAGE_ID = 'image_id'
SPLIT = 'split'
FEATURES = 'features'
TOKENS = 'tokens'
CAPTION_IDS = 'caption_ids'
CAPTION_LENGTHS = 'caption_lengths'

# tf.Transform's name for the learned vocabulary inside transform_fn/assets.
VOCABULARY_NAME = 'words'


def raw_feature_spec(feature_dim):
    """The feature spec of the transform's input rows, for images with ``feature_dim``-long features."""
    return {
        IMAGE_ID: tf.io.FixedLenFeature([], tf.string),
        SPLIT: tf.io.FixedLenFeature([], tf.string),
        FEATURES: tf.io.FixedLenFeature([feature_dim], tf.float32),
        TOKENS: tf.io.VarLenFeature(tf.string),
        CAPTION_LENGTHS: tf.io.VarLenFeature(tf.int64),
    }
