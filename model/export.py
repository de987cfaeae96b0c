"""Exports a trained Show-and-Tell model as one self-contained captioner SavedModel.

The export holds the encoder, the caption model, the vocabulary and the
decoding options; it turns images into their ``beam_size`` best captions and
loads with ``tf.saved_model.load`` alone, in a process that has no img2txt
(the Keras models are saved as traced functions, not as Keras objects). Its
on-disk contract (signatures, their inputs and outputs, files, attributes) is
``schemas.captioner``.

Three ways in, each a signature over a dynamic batch:

  - ``caption_images``: image file bytes, decoded in-graph (``decode_images``).
  - ``caption_pixels``: the encoder's input crop made by the pipelines' Pillow
    decoder. The caption pipeline calls this one: decoding stays in Python,
    where each image's failure becomes an error record.
  - ``caption_features``: encoder features, for callers that have them.

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

from img2txt.model import beam_search, encoders, storage
from img2txt.schemas import captioner, vocabulary

# Model ids are "show_and_tell@" and the first hex digits of the content hash,
# as encoder ids are "<name>@<digits of the weights file's hash>".
_ID_PREFIX = 'show_and_tell'
_ID_DIGITS = 12

# Magic bytes of the formats decoded in-graph (the pipelines' decoder also
# takes TIFF, which TensorFlow cannot decode). Pillow sniffs the same way.
_JPEG = b'\xff\xd8\xff'
_PNG = b'\x89PNG\r\n\x1a\n'
_GIF = (b'GIF87a', b'GIF89a')
_BMP = b'BM'
_RIFF, _WEBP = b'RIFF', b'WEBP'
_MAGIC_BYTES = 12
# How decode_images' per-image function treats each format: JPEGs get
# Pillow's draft mode and EXIF orientation, the others a plain decode.
_AS_JPEG, _AS_OTHER = range(2)

# The EXIF block is an APP1 segment ("Exif\0\0" then a TIFF structure) among
# the segments before the image data; camera files put it first.
_EXIF_HEADER = 'Exif\x00\x00'
_EXIF_SEARCH_BYTES = 1 << 17
_ORIENTATION_TAG = 0x0112

# The TensorFlow kernels equal to Pillow's filters, antialiased when downscaling.
_KERNELS = {'bicubic': 'keyscubic', 'bilinear': 'triangle'}


def export_captioner(model, model_config, encoder_name, vocab, export_dir, encoder_weights=None):
    """Writes the captioner SavedModel of a trained model.

    Args:
      model: a trained ``ShowAndTell``.
      model_config: its ``ModelConfig``; the sizes must be the model's, and
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

    Returns:
      The model id (``show_and_tell@`` and 12 hex digits), also in
      ``export_dir/model_id.txt`` and the loaded object's ``model_id``.

    Raises:
      ValueError: vocabulary, model, config and encoder do not fit together.
      FileExistsError: ``export_dir`` is not empty.
    """
    _check_empty(export_dir)
    vocab = vocabulary.read(vocab)
    encoder = encoders.load(encoder_name, encoder_weights)
    _check_compatible(model, model_config, encoder, vocab)
    config = {
        captioner.CONFIG_FORMAT: captioner.FORMAT_VERSION,
        captioner.CONFIG_MODEL: model_config.to_dict(),
        captioner.CONFIG_ENCODER: encoder.describe(),
    }
    config_json = json.dumps(config, indent=2, sort_keys=True) + '\n'
    # Weights, not all variables: the dropout layers' random-generator state
    # changes with every training step but decides nothing when captioning.
    model_id = _model_id(config_json, vocab, [*encoder.model.weights, *model.weights])
    write = functools.partial(_write_export, model=model, model_config=model_config, encoder=encoder, vocab=vocab,
                              config_json=config_json, model_id=model_id)
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


def decode_images(images, input_spec):
    """Image file bytes → the encoder's input crops, in TensorFlow ops (the in-graph decoder).

    It follows ``pipelines.image_decoding.decode`` step by step, so that
    captions of bytes match those of the pipelines' pixels: JPEGs are scaled
    down in the DCT domain exactly as Pillow's draft mode does, decoded with
    libjpeg's accurate integer IDCT (Pillow's), turned by their EXIF
    orientation; transparency is composited on white; the crop is resampled
    straight from the image with Pillow's filter and pixel geometry
    (``ScaleAndTranslate``), not resized whole and then cropped. On photos the
    crops differ from Pillow's by rounding (mean absolute difference about
    0.2 of 255). Differences left: TIFF is refused; a GIF's transparent
    pixels are black, not white (TensorFlow's GIF decoder drops transparency);
    only the first 128 KiB of a JPEG are searched for EXIF; there is no
    decompression-bomb limit beyond the decoders' own.

    Args:
      images: string ``[B]``: JPEG, PNG, GIF, BMP or WebP file bytes (format
        sniffed from the bytes; animations give their first frame).
      input_spec: the encoder's ``InputSpec``.

    Returns:
      uint8 ``[B, size, size, 3]``.

    Raises:
      tf.errors.InvalidArgumentError: the whole batch fails when one image
        does. For empty input or bytes of another format, the message names
        the first such image's index in the batch; for corrupt data of a known
        format, it is TensorFlow's decoder message.
    """
    images = tf.convert_to_tensor(images, tf.string)
    formats = _image_formats(images)
    # Scalars that also exist for an empty batch (B when no image is bad).
    index = tf.range(tf.size(images))
    first_bad = tf.reduce_min(tf.where(formats < 0, index, tf.size(images)))
    bad_length = tf.reduce_sum(tf.where(index == first_bad, tf.strings.length(images), 0))
    check = tf.debugging.Assert(tf.reduce_all(formats >= 0), [tf.strings.format(
        'image {} of the batch ({} bytes) is not a JPEG, PNG, GIF, BMP or WebP file', (first_bad, bad_length))])
    size = input_spec.size

    def decode_one(args):
        data, image_format = args
        image = tf.switch_case(image_format, {
            _AS_JPEG: lambda: _decode_jpeg(data, input_spec),
            # Each format's own channels: the WebP decoder refuses any other count.
            _AS_OTHER: lambda: _to_rgb(tf.io.decode_image(data, channels=0, expand_animations=False)),
        })
        return _resize_and_crop(image, input_spec)

    with tf.control_dependencies([check]):
        return tf.map_fn(decode_one, (images, formats),
                         fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))


def _image_formats(images):
    """int32 ``[B]``: how to decode each image (``_AS_*``), -1 for empty input or another format."""
    # Padded so that every head has all the magic bytes' positions.
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(images, 0, _MAGIC_BYTES),
                                              b'\x00' * _MAGIC_BYTES]), 0, _MAGIC_BYTES)

    def starts_with(magic, at=0):
        return tf.equal(tf.strings.substr(head, at, len(magic)), magic)

    other = (starts_with(_PNG) | starts_with(_GIF[0]) | starts_with(_GIF[1]) | starts_with(_BMP)
             | (starts_with(_RIFF) & starts_with(_WEBP, at=8)))
    return tf.where(starts_with(_JPEG), _AS_JPEG, tf.where(other, _AS_OTHER, -1))


def _decode_jpeg(data, input_spec):
    """A JPEG as Pillow's decoder gives it: DCT-domain downscale, accurate IDCT, EXIF orientation."""
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    height, width = shape[0], shape[1]
    short = tf.maximum(tf.minimum(height, width), 1)
    # Pillow's draft(): the size wanted keeps the short side >= resize; the
    # scale is the largest of 8, 4, 2, 1 that still covers it on both sides.
    resize = tf.constant(input_spec.resize, tf.int64)
    wanted_width = (width * resize + short - 1) // short
    wanted_height = (height * resize + short - 1) // short
    fits = tf.minimum(width // wanted_width, height // wanted_height)
    scales = (1, 2, 4, 8)
    index = tf.where(short > resize, tf.reduce_sum(tf.cast(fits >= scales[1:], tf.int32)), 0)
    image = tf.switch_case(index, [
        lambda scale=scale: tf.io.decode_jpeg(data, channels=3, ratio=scale, dct_method='INTEGER_ACCURATE')
        for scale in scales])
    return _apply_orientation(image, _exif_orientation(data))


def _exif_orientation(data):
    """The EXIF orientation (1-8) of JPEG bytes: 1 when there is none or it cannot be read."""
    parts = tf.strings.split(tf.strings.substr(data, 0, _EXIF_SEARCH_BYTES), sep=_EXIF_HEADER, maxsplit=1)
    found = tf.size(parts) == 2
    tiff = tf.cast(tf.io.decode_raw(parts[-1], tf.uint8), tf.int64)
    # Reads past the end give zeros: bad offsets then find no orientation entry.
    last = tf.size(tiff, out_type=tf.int64)
    tiff = tf.pad(tiff, [[0, 1]])
    little_endian = tf.reduce_all(tiff[:2] == ord('I'))
    big_endian = tf.reduce_all(tiff[:2] == ord('M'))

    def unsigned(offsets, width):
        digits = tf.gather(tiff, tf.minimum(offsets[..., tf.newaxis] + tf.range(width, dtype=tf.int64), last))
        weights = tf.where(little_endian, 256 ** tf.range(width, dtype=tf.int64),
                           256 ** tf.range(width - 1, -1, -1, dtype=tf.int64))
        return tf.reduce_sum(digits * weights, axis=-1)

    # TIFF: byte order (2), 42 (2), offset of the first directory (4); a
    # directory: entry count (2), then 12-byte entries: tag (2), type (2),
    # count (4), value (a SHORT in the first 2 of 4 bytes).
    directory = unsigned(tf.constant(4, tf.int64), 4)
    entries = directory + 2 + 12 * tf.range(unsigned(directory, 2), dtype=tf.int64)
    values = tf.where(unsigned(entries, 2) == _ORIENTATION_TAG, unsigned(entries + 8, 2), 0)
    orientation = tf.reduce_max(tf.concat([values, [0]], axis=0))
    valid = found & (little_endian | big_endian) & (orientation >= 1) & (orientation <= 8)
    return tf.cast(tf.where(valid, orientation, 1), tf.int32)


def _apply_orientation(image, orientation):
    """Turns an image as Pillow's ``ImageOps.exif_transpose`` does for EXIF orientation 1-8."""
    def transpose(x):
        return tf.transpose(x, [1, 0, 2])
    return tf.switch_case(orientation - 1, [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0, 1]),
        lambda: tf.reverse(image, [0]),
        lambda: transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.reverse(transpose(image), [0, 1]),
        lambda: tf.image.rot90(image, 1),
    ])


def _to_rgb(image):
    """uint8 grey, grey + alpha, RGB or RGBA → RGB; transparency composited on white, as the pipelines' decoder."""
    channels = tf.shape(image)[-1]
    colour = tf.cast(tf.gather(image, tf.where(channels >= 3, [0, 1, 2], [0, 0, 0]), axis=-1), tf.float32)
    alpha = tf.where(channels % 2 == 0, tf.cast(image[..., -1:], tf.float32) / 255.0, 1.0)
    return tf.cast(tf.round(colour * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def _resize_and_crop(image, input_spec):
    """Short side → resize, centre crop ``size``, in one resample of the crop window, as Pillow's ``box=``."""
    shape = tf.cast(tf.shape(image), tf.float32)
    height, width = shape[0], shape[1]
    factor = input_spec.resize / tf.minimum(height, width)
    window = input_spec.size / factor
    # ScaleAndTranslate maps output pixel centre x + 0.5 to input (x + 0.5 - translation) / scale.
    translation = tf.stack([(window - height) / 2, (window - width) / 2]) * factor
    resampled = tf.raw_ops.ScaleAndTranslate(
        images=image[tf.newaxis], size=[input_spec.size, input_spec.size], scale=tf.stack([factor, factor]),
        translation=translation, kernel_type=_KERNELS[input_spec.resample], antialias=True)[0]
    return tf.cast(tf.clip_by_value(tf.round(resampled), 0, 255), tf.uint8)


def _check_compatible(model, model_config, encoder, vocab):
    for field in ('vocab_size', 'feature_dim', 'embedding_size', 'lstm_units'):
        if getattr(model.config, field) != getattr(model_config, field):
            raise ValueError(f'model_config.{field} is {getattr(model_config, field)} but the model was built '
                             f'with {getattr(model.config, field)}')
    if len(vocab) != model_config.vocab_size:
        raise ValueError(f'the vocabulary has {len(vocab)} tokens but model_config.vocab_size is '
                         f'{model_config.vocab_size}')
    if encoder.feature_dim != model_config.feature_dim:
        raise ValueError(f'encoder {encoder.id} gives {encoder.feature_dim}-d features but '
                         f'model_config.feature_dim is {model_config.feature_dim}')


def _model_id(config_json, vocab, weights):
    """``show_and_tell@`` + the start of a SHA-256 over the config, the vocabulary and the weights' values."""
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
    return f'{_ID_PREFIX}@{digest.hexdigest()[:_ID_DIGITS]}'


def _captioner_module(model, model_config, encoder, vocab, config_json, model_id, vocab_file):
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

    # Each signature calls the one below it, so the encoder and the beam
    # search are traced once and the saved graph holds one copy of each.
    @tf.function(input_signature=[tf.TensorSpec([None, encoder.feature_dim], tf.float32, name=captioner.FEATURES)],
                 autograph=False)
    def caption_features(features):
        result = beam_search.beam_search(
            model, features, model_config.beam_size, model_config.max_caption_length,
            model_config.length_normalization)
        # Beam search pads with PAD_ID and never returns START or END, so
        # dropping the reserved ids leaves the caption's words (UNK too is
        # dropped, as ids_to_text does).
        is_word = result.token_ids >= vocabulary.NUM_RESERVED
        tokens = tf.where(is_word, tf.gather(words, result.token_ids) + ' ', '')
        return {captioner.CAPTIONS: tf.strings.strip(tf.strings.reduce_join(tokens, axis=-1)),
                captioner.LOG_PROBS: result.log_probs,
                captioner.LENGTHS: result.lengths}

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name=captioner.PIXELS)],
                 autograph=False)
    def caption_pixels(pixels):
        # TensorFlow's CPU depthwise convolution rejects an empty batch.
        features = tf.cond(tf.shape(pixels)[0] > 0,
                           lambda: encoder.model(pixels, training=False)['features'],
                           lambda: tf.zeros([0, encoder.feature_dim]))
        return caption_features(features)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=captioner.IMAGES)], autograph=False)
    def caption_images(images):
        return caption_pixels(decode_images(images, encoder.input_spec))

    signatures = {captioner.CAPTION_FEATURES: caption_features.get_concrete_function(),
                  captioner.CAPTION_PIXELS: caption_pixels.get_concrete_function(),
                  captioner.CAPTION_IMAGES: caption_images.get_concrete_function()}
    signatures[captioner.SERVING_DEFAULT] = signatures[captioner.CAPTION_IMAGES]
    return module, signatures


def _write_export(directory, model, model_config, encoder, vocab, config_json, model_id):
    """Saves the SavedModel and the files beside it into an existing empty local directory."""
    with tempfile.TemporaryDirectory() as scratch:
        # The asset's file name is the one it gets under assets/.
        vocab_file = os.path.join(scratch, vocabulary.VOCABULARY_FILE)
        with open(vocab_file, 'w', encoding='utf-8') as f:
            f.write(''.join(token + '\n' for token in vocab))
        module, signatures = _captioner_module(model, model_config, encoder, vocab, config_json, model_id,
                                               vocab_file)
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
