"""The caption decoders, in one table: what each builds, reads, trains with and must keep to resume.

    name            config              model              reads per image
    show_and_tell   ShowAndTellConfig   ShowAndTell        the pooled feature vector [D]
    attention       AttentionConfig     ShowAttendAndTell  the spatial map's cells [H * W, D]

Every part of img2txt that depends on the decoder asks this table (``get``)
for the entry of a name recorded in a file (``schemas.decoders``): training
builds the model and its loss, checkpoints decide whether a run may resume
another, export checks the encoder and traces the features, the captioner,
evaluate and the report read what an export takes and returns.

A decoder is a Keras model with the step interface ``beam_search`` and
self-critical training drive:

    call((features, input_ids), training)  teacher-forced logits [B, T, V]
    initial_state(features)                the decoding state, a nest of [B, ...] tensors
    step(token_ids, state)                 (log-probabilities [B, V], the next state)

and optionally ``attention_weights(features, token_ids)``, where it looked
for each word (exported beside the captions). Adding a decoder is one entry
below, its module and its config class (``model.config``), and its name in
``schemas.decoders``.
"""
import dataclasses
from typing import Callable

import tensorflow as tf

from img2txt.model.networks.attention import AttentionConfig, ShowAttendAndTell
from img2txt.model.networks.show_and_tell import ShowAndTell, ShowAndTellConfig
from img2txt.schemas import decoders as names

# The config fields every decoder's weights depend on.
_SHAPE_FIELDS = ('vocab_size', 'feature_dim', 'embedding_size', 'lstm_units')


@dataclasses.dataclass(frozen=True)
class Decoder:
    """One decoder's entry."""

    name: str
    # One line for --help: what it reads and how.
    summary: str
    config_class: type
    model_class: type
    # Whether it reads the encoder's spatial map (preprocess --spatial-features) rather than the pooled vector.
    reads_spatial_map: bool
    # The config fields that decide its weights, or what they were trained to read: a checkpoint resumes,
    # and an export takes a config, only if these are the model's own.
    shape_fields: tuple
    # (model, inputs, target_ids, training) -> (logits, extra loss summed over the batch): the training
    # forward pass and the decoder's own term added to the token cross-entropy's sum (0 for none).
    training_pass: Callable

    def build(self, config):
        """A new model of this decoder from its config."""
        if not isinstance(config, self.config_class):
            raise TypeError(f'the {self.name} decoder takes a {self.config_class.__name__}, '
                            f'got {type(config).__name__}')
        return self.model_class(config)

    @property
    def has_attention_weights(self):
        """Whether its models say where they looked for each word (``attention_weights``)."""
        return hasattr(self.model_class, 'attention_weights')

    def feature_shape(self, feature_dim, spatial_shape):
        """What it reads per image from an encoder with pooled ``feature_dim`` and map ``(H, W, D)``."""
        if self.reads_spatial_map:
            height, width, channels = spatial_shape
            return (height * width, channels)
        return (feature_dim,)

    def config_feature_shape(self, config):
        """What a model of ``config`` reads per image."""
        return (config.grid_cells, config.feature_dim) if self.reads_spatial_map else (config.feature_dim,)

    def encoder_features(self, encoder_outputs):
        """The features it reads from an encoder's outputs (``encoders.Encoder.model``), ``[B, *feature_shape]``."""
        if self.reads_spatial_map:
            spatial = encoder_outputs['spatial']
            return tf.reshape(spatial, [-1, spatial.shape[1] * spatial.shape[2], spatial.shape[3]])
        return encoder_outputs['features']


def _show_and_tell_pass(model, inputs, target_ids, training):
    return model(inputs, training=training), tf.constant(0.0)


def _attention_pass(model, inputs, target_ids, training):
    logits, attention = model(inputs, training=training, return_attention=True)
    return logits, model.doubly_stochastic_loss_sum(target_ids, attention)


_TABLE = {decoder.name: decoder for decoder in (
    Decoder(names.SHOW_AND_TELL, 'an LSTM that reads the pooled feature vector once (Show and Tell)',
            ShowAndTellConfig, ShowAndTell, reads_spatial_map=False,
            shape_fields=_SHAPE_FIELDS, training_pass=_show_and_tell_pass),
    # grid_cells sizes no weight, but a model trained on one grid would attend over another;
    # inject_context widens the LSTM's kernel.
    Decoder(names.ATTENTION, 'soft attention over the feature map before every word (Show, Attend and Tell), '
            'which preprocess stores with --spatial-features', AttentionConfig, ShowAttendAndTell,
            reads_spatial_map=True,
            shape_fields=_SHAPE_FIELDS + ('attention_units', 'grid_cells', 'gate', 'inject_context'),
            training_pass=_attention_pass),
)}
assert tuple(_TABLE) == names.NAMES, 'schemas.decoders.NAMES and the table must list the same decoders'
# Every entry, in the order of schemas.decoders.NAMES.
ENTRIES = tuple(_TABLE.values())


def get(name):
    """The entry of a decoder name (one of ``schemas.decoders.NAMES``).

    Raises:
      ValueError: an unknown name.
    """
    if name not in _TABLE:
        raise ValueError(f'decoder must be one of {list(names.NAMES)}, got {name!r}')
    return _TABLE[name]


def of_config(config):
    """The entry whose config class ``config`` is an instance of (exactly, not of a subclass)."""
    for decoder in ENTRIES:
        if type(config) is decoder.config_class:
            return decoder
    raise ValueError(f'a decoder config must be one of {[d.config_class.__name__ for d in ENTRIES]}, '
                     f'got {type(config).__name__}')
