"""Fixed-shape batches: how the encoder and the captioner keep an image's result independent of its neighbours.

TensorFlow's CPU kernels may pick another algorithm for another batch shape,
and a float result then differs in its last bits. Running every batch at
exactly ``batch_size`` rows, the last padded with zeros (black images, zero
features), makes an image's features and captions a function of the image
alone, however a caller or a pipeline groups images.
"""
import numpy as np


def fixed_batches(inputs, batch_size, at_least_one=False):
    """``inputs`` ``[N, ...]`` as batches of exactly ``batch_size`` rows, the last padded with zeros.

    With ``at_least_one``, an empty input still gives one batch of zeros (for
    a caller that needs the outputs' shapes). Callers keep the first N rows of
    the concatenated results.
    """
    count = len(inputs)
    padding = -count % batch_size
    if padding or (at_least_one and count == 0):
        inputs = np.concatenate([inputs, np.zeros((padding or batch_size, *inputs.shape[1:]), inputs.dtype)])
    return [inputs[start:start + batch_size] for start in range(0, len(inputs), batch_size)]
