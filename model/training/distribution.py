"""Where and in what precision training computes: the ``tf.distribute`` strategy and the Keras dtype policy.

The default strategy runs on the CPU or one GPU; ``MirroredStrategy`` keeps a
copy of the weights on every GPU of the machine (the default when there are
several). Mixed precision computes in 16 bits and keeps the weights in 32;
float16 needs loss scaling, bfloat16 does not.
"""
import contextlib

import keras
import tensorflow as tf

STRATEGIES = ('default', 'mirrored')
FLOAT32 = 'float32'
MIXED_FLOAT16 = 'mixed_float16'
MIXED_BFLOAT16 = 'mixed_bfloat16'


def make_strategy(name=None):
    """Returns a ``tf.distribute`` strategy by name.

    Args:
      name: 'default' (the CPU or one GPU), 'mirrored' (all GPUs of the
        machine, or the CPU when there is none) or None: mirrored when
        several GPUs are visible, else default.
    """
    if name is None:
        name = 'mirrored' if len(tf.config.list_logical_devices('GPU')) > 1 else 'default'
    if name == 'default':
        return tf.distribute.get_strategy()
    if name == 'mirrored':
        return tf.distribute.MirroredStrategy()
    raise ValueError(f'strategy must be one of {list(STRATEGIES)}, got {name!r}')


def precision_policy(mixed_precision):
    """The Keras dtype policy that training uses.

    Mixed precision is 'mixed_float16' with loss scaling on GPUs (every CUDA
    GPU's tensor cores run float16), and 'mixed_bfloat16' without a GPU:
    CPUs have no fast float16 arithmetic, some (AVX512-BF16, AMX) have fast
    bfloat16, and bfloat16 needs no loss scaling.
    """
    if not mixed_precision:
        return FLOAT32
    return MIXED_FLOAT16 if tf.config.list_logical_devices('GPU') else MIXED_BFLOAT16


def uses_loss_scaling(policy):
    """Whether training under ``policy`` scales the loss (float16 gradients underflow without it)."""
    return policy == MIXED_FLOAT16


def with_loss_scaling(optimizer, policy):
    """``optimizer``, wrapped in a ``LossScaleOptimizer`` when ``policy`` needs loss scaling."""
    if uses_loss_scaling(policy):
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


@contextlib.contextmanager
def dtype_policy(name):
    """Builds layers under a Keras dtype policy; they keep it after the block."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
