"""Exports a trained caption model as one self-contained captioner SavedModel.

The caption model is any decoder of ``model.networks.decoders`` (Show and Tell on
pooled features, Show, Attend and Tell on the encoder's feature map); the
config's type says which. The export holds the encoder, the caption model, the vocabulary and the
decoding options; it turns images into their ``beam_size`` best captions and
loads with ``tf.saved_model.load`` alone, in a process that has no img2txt
(the Keras models are saved as traced functions, not as Keras objects). Its
on-disk contract (signatures, their inputs and outputs, files, attributes) is
``schemas.captioner``.

Three ways in, each a signature over a dynamic batch:

  - ``caption_images``: image file bytes, decoded in-graph (``model.serving.graph_decoding``),
    refusing images whose header declares more than ``max_pixels`` pixels.
  - ``caption_pixels``: the encoder's input crop made by the pipelines' Pillow
    decoder. The caption pipeline calls this one: decoding stays in Python,
    where each image's failure becomes an error record.
  - ``caption_features``: encoder features, for callers that have them:
    what the decoder reads (``decoders.Decoder.feature_shape``).

An export of a decoder with attention weights also returns where it looked
for each word of each image's best caption (a teacher-forced pass over it
after the search).

The model id is a content hash of everything that decides a caption (the
variables of both models, the vocabulary, the config), so exporting the same
weights twice gives the same id, and any change to them a new one.
"""
import functools
import hashlib
import json
import os
import shutil
import tempfile
import uuid

import numpy as np
import tensorflow as tf

from img2txt.model import input_spec, storage
from img2txt.model.networks import decoders, encoders
from img2txt.model.serving import beam_search, graph_decoding
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS
from img2txt.schemas import captioner, vocabulary

# Model ids are the decoder's name, "@" and the first hex digits of the content
# hash, as encoder ids are "<name>@<digits of the weights file's hash>".
_ID_DIGITS = 12


def export_captioner(model, model_config, encoder_name, vocab, export_dir, encoder_weights=None,
                     max_pixels=DEFAULT_MAX_PIXELS, spatial_layer=encoders.DEFAULT_SPATIAL_LAYER,
                     resize_mode=input_spec.CROP):
    """Writes the captioner SavedModel of a trained model.

    Args:
      model: a trained model of one of ``model.networks.decoders``.
      model_config: its config, whose class decides the decoder (recorded in
        the config); the sizes must be the model's, and
        the decoding options (beam size, max caption length, length
        normalisation) are what the captioner will use. It returns
        ``beam_size`` captions per image.
      encoder_name: the encoder the training features came from (``encoders.load``).
      vocab: the token list, reserved tokens first (the vocabulary file's lines).
      export_dir: directory to write, local or any filesystem Beam knows
        (``gs://...``); it must not exist or be empty. Local exports appear
        whole (written beside it, then renamed); remote ones are written
        locally, then copied with ``saved_model.pb`` last.
      encoder_weights: the encoder's weights, as ``encoders.load`` takes them.
      spatial_layer: the encoder's map an attention decoder was trained on
        (``encoders.load``; the preprocess manifest's).
      resize_mode: how images became the encoder's square in training
        (``encoders.load``; the preprocess manifest's): the in-graph decoder
        and every job decoding for this captioner do the same.
      max_pixels: ``caption_images`` refuses images whose header declares
        more pixels than this (by default the pipelines' decoder's limit);
        also in the config, for callers that decode themselves.

    Returns:
      The model id (the decoder's name, e.g. ``show_and_tell@``, and 12 hex
      digits), also in
      ``export_dir/model_id.txt`` and the loaded object's ``model_id``.

    Raises:
      ValueError: vocabulary, model, config and encoder do not fit together,
        or ``max_pixels`` is not positive.
      FileExistsError: ``export_dir`` is not empty.
    """
    _check_empty(export_dir)
    if max_pixels < 1:
        raise ValueError(f'max_pixels must be positive, got {max_pixels}')
    vocab = vocabulary.read(vocab)
    encoder = encoders.load(encoder_name, encoder_weights, spatial_layer=spatial_layer, resize_mode=resize_mode)
    decoder = _decoder(model, model_config)
    _check_compatible(decoder, model, model_config, encoder, vocab)
    config = {
        captioner.CONFIG_FORMAT: captioner.FORMAT_VERSION,
        captioner.CONFIG_DECODER: decoder.name,
        captioner.CONFIG_MODEL: model_config.to_dict(),
        captioner.CONFIG_ENCODER: encoder.describe(),
        captioner.CONFIG_MAX_PIXELS: max_pixels,
    }
    config_json = json.dumps(config, indent=2, sort_keys=True) + '\n'
    # Weights, not all variables: the dropout layers' random-generator state
    # changes with every training step but decides nothing when captioning.
    model_id = _model_id(decoder.name, config_json, vocab, [*encoder.model.weights, *model.weights])
    write = functools.partial(_write_export, decoder=decoder, model=model, model_config=model_config,
                              encoder=encoder, vocab=vocab,
                              config_json=config_json, model_id=model_id, max_pixels=max_pixels)
    if storage.is_remote(export_dir):
        with tempfile.TemporaryDirectory() as staging:
            write(staging)
            storage.upload_tree(staging, export_dir, last=tf.saved_model.SAVED_MODEL_FILENAME_PB)
    else:
        _write_local(export_dir, write)
    return model_id


def load_captioner(export_dir):
    """Loads an exported captioner (local or remote, e.g. ``gs://``) with ``tf.saved_model.load``.

    A remote export is copied to a local temporary directory first (through
    Beam's filesystems), and the copy is removed once loaded: everything the
    signatures use is in memory by then.

    Returns:
      The loaded object: ``.signatures[name]`` and the attributes listed in
      ``schemas.captioner``.

    Raises:
      FileNotFoundError: a remote ``export_dir`` holds no ``saved_model.pb``.
    """
    if not storage.is_remote(export_dir):
        return tf.saved_model.load(export_dir)
    with tempfile.TemporaryDirectory() as local:
        if tf.saved_model.SAVED_MODEL_FILENAME_PB not in storage.download_tree(export_dir, local):
            raise FileNotFoundError(
                f'no captioner SavedModel in {export_dir}: it has no {tf.saved_model.SAVED_MODEL_FILENAME_PB}')
        return tf.saved_model.load(local)


def captions_text(captions):
    """The ``captions`` output of a signature (string ``[B, k]``) as B lists of k Python strings."""
    return [[caption.decode('utf-8') for caption in row] for row in np.asarray(captions)]


def _decoder(model, model_config):
    """The ``decoders`` entry of the config's type; the model must be of that kind."""
    decoder = decoders.of_config(model_config)
    if not isinstance(model, decoder.model_class):
        raise ValueError(f'model_config is a {decoder.config_class.__name__}, so the model must be a '
                         f'{decoder.model_class.__name__}, got {type(model).__name__}')
    return decoder


def _check_compatible(decoder, model, model_config, encoder, vocab):
    for field in decoder.shape_fields:
        if getattr(model.config, field) != getattr(model_config, field):
            raise ValueError(f'model_config.{field} is {getattr(model_config, field)} but the model was built '
                             f'with {getattr(model.config, field)}')
    if len(vocab) != model_config.vocab_size:
        raise ValueError(f'the vocabulary has {len(vocab)} tokens but model_config.vocab_size is '
                         f'{model_config.vocab_size}')
    gives, reads = _feature_shape(decoder, encoder), decoder.config_feature_shape(model_config)
    if gives != reads:
        source = (f'a {"x".join(map(str, encoder.spatial_shape))} {encoder.spatial_layer} feature map'
                  if decoder.reads_spatial_map else f'{encoder.feature_dim}-d features')
        raise ValueError(f'encoder {encoder.id} gives {source}, {list(gives)} per image, but the {decoder.name} '
                         f'model_config reads {list(reads)}')


def _feature_shape(decoder, encoder):
    return decoder.feature_shape(encoder.feature_dim, encoder.spatial_shape)


def _model_id(decoder, config_json, vocab, weights):
    """The decoder's name, ``@`` and the start of a SHA-256 over the config, the vocabulary and the weights' values."""
    digest = hashlib.sha256()

    def add(data):
        # Length-prefixed, so that no two different inputs hash the same stream.
        digest.update(len(data).to_bytes(8, 'little'))
        digest.update(data)

    add(config_json.encode('utf-8'))
    add('\n'.join(vocab).encode('utf-8'))
    for weight in weights:
        value = np.ascontiguousarray(weight.numpy())
        add(f'{value.dtype.str}{value.shape}'.encode('ascii'))
        add(value.tobytes())
    return f'{decoder}@{digest.hexdigest()[:_ID_DIGITS]}'


def _captioner_module(decoder, model, model_config, encoder, vocab, config_json, model_id, max_pixels, vocab_file):
    """The ``tf.Module`` to save, and its signatures.

    The module tracks the models' weights, not the Keras models themselves:
    the saved functions then refer only to variables, and loading needs no
    Keras classes (as Keras' own ``ExportArchive`` does).
    """
    module = tf.Module()
    module.encoder_weights = list(encoder.model.weights)
    module.model_weights = list(model.weights)
    module.vocabulary_file = tf.saved_model.Asset(vocab_file)
    for name, value in ((captioner.MODEL_ID, model_id), (captioner.ENCODER_ID, encoder.id),
                        (captioner.CONFIG, config_json), (captioner.VOCABULARY, vocab)):
        setattr(module, name, tf.Variable(value, trainable=False, dtype=tf.string))
    words = getattr(module, captioner.VOCABULARY)
    size = encoder.input_spec.size
    feature_shape = list(_feature_shape(decoder, encoder))

    def encode(pixels):
        return decoder.encoder_features(encoder.model(pixels, training=False))

    # Each signature calls the one below it, so the encoder and the beam
    # search are traced once and the saved graph holds one copy of each.
    @tf.function(input_signature=[tf.TensorSpec([None, *feature_shape], tf.float32, name=captioner.FEATURES)],
                 autograph=False)
    def caption_features(features):
        result = beam_search.beam_search(
            model, features, model_config.beam_size, model_config.max_caption_length,
            model_config.length_normalization)
        outputs = {captioner.CAPTIONS: beam_search.texts(result.token_ids, words),
                   captioner.LOG_PROBS: result.log_probs,
                   captioner.LENGTHS: result.lengths}
        if decoder.has_attention_weights:
            # The search carries no attention weights; a teacher-forced pass
            # over each image's best caption recomputes those it chose with.
            weights = model.attention_weights(features, result.token_ids[:, 0])
            outputs[captioner.ATTENTION] = tf.reshape(weights, [-1, model_config.max_caption_length,
                                                                *encoder.spatial_shape[:2]])
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name=captioner.PIXELS)],
                 autograph=False)
    def caption_pixels(pixels):
        # TensorFlow's CPU depthwise convolution rejects an empty batch.
        features = tf.cond(tf.shape(pixels)[0] > 0, lambda: encode(pixels), lambda: tf.zeros([0, *feature_shape]))
        return caption_features(features)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=captioner.IMAGES)], autograph=False)
    def caption_images(images):
        return caption_pixels(graph_decoding.decode_images(images, encoder.input_spec, max_pixels))

    signatures = {captioner.CAPTION_FEATURES: caption_features.get_concrete_function(),
                  captioner.CAPTION_PIXELS: caption_pixels.get_concrete_function(),
                  captioner.CAPTION_IMAGES: caption_images.get_concrete_function()}
    signatures[captioner.SERVING_DEFAULT] = signatures[captioner.CAPTION_IMAGES]
    return module, signatures


def _write_export(directory, decoder, model, model_config, encoder, vocab, config_json, model_id, max_pixels):
    """Saves the SavedModel and the files beside it into an existing empty local directory."""
    with tempfile.TemporaryDirectory() as scratch:
        # The asset's file name is the one it gets under assets/.
        vocab_file = os.path.join(scratch, vocabulary.VOCABULARY_FILE)
        with open(vocab_file, 'w', encoding='utf-8') as f:
            f.write(''.join(token + '\n' for token in vocab))
        module, signatures = _captioner_module(decoder, model, model_config, encoder, vocab, config_json, model_id,
                                               max_pixels, vocab_file)
        tf.saved_model.save(module, directory, signatures=signatures)
    with open(os.path.join(directory, captioner.MODEL_ID_FILE), 'w', encoding='utf-8') as f:
        f.write(model_id + '\n')
    with open(os.path.join(directory, captioner.CONFIG_FILE), 'w', encoding='utf-8') as f:
        f.write(config_json)


def _write_local(export_dir, write):
    """Runs ``write(staging)`` in a new directory beside ``export_dir``, then renames it into place."""
    parent, name = os.path.split(os.path.abspath(export_dir))
    staging = os.path.join(parent, f'.{name}.tmp-{uuid.uuid4().hex}')
    os.makedirs(staging)
    try:
        write(staging)
        # Replaces an empty export_dir; fails if one appeared with files meanwhile.
        os.replace(staging, os.path.abspath(export_dir))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_empty(export_dir):
    if not storage.is_empty(export_dir):
        raise FileExistsError(f'export directory {export_dir} is not empty')
