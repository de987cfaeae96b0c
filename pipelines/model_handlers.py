"""RunInference model handlers: how Beam workers load and batch img2txt's models.

Beam's ready-made TensorFlow handlers load with ``tf.keras.models.load_model``
(which under Keras 3 cannot read SavedModels) and import tensorflow_hub, so
img2txt has its own small handlers. Wrapped in ``KeyedModelHandler`` they keep
everything RunInference brings: one model shared per worker process,
``BatchElements`` batching, inference metrics and the dead-letter output of
``with_exception_handling``.
"""
import resource

import numpy as np
from apache_beam.ml.inference import base
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from img2txt.model.networks import encoders
from img2txt.model.serving import captioner

# Beam 2.77 imports ``resource`` in one try block with a model manager that
# needs torch; without torch it sets ``resource`` to None, then warns "Resource
# module is not available" at every model load and reports no memory use.
if base.resource is None:
    base.resource = resource


class EncoderModelHandler(ModelHandler):
    """Decoded ``uint8 [S, S, 3]`` pixels → ``(features, spatial)`` per image.

    ``features`` is the pooled CNN vector (float32 ``[D]``); ``spatial`` is the
    encoder's map of ``spatial_layer`` (float32 ``[H, W, C]``,
    ``Encoder.spatial_shape``) when the handler is built with one, from the
    same network pass, else None.

    The encoder computes in fixed batches of ``batch_size`` (``Encoder.features``),
    so features do not depend on how a runner happened to batch; Beam is asked
    for batches of that size too, so that only a bundle's last batch is padded.
    """

    def __init__(self, encoder_name=encoders.DEFAULT, weights=None, batch_size=encoders.DEFAULT_BATCH_SIZE,
                 spatial_layer=None):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._encoder_name = encoder_name
        self._weights = weights
        self._batch_size = batch_size
        # None: no maps.
        self._spatial_layer = spatial_layer

    def load_model(self):
        return encoders.load(self._encoder_name, weights=self._weights, batch_size=self._batch_size,
                             spatial_layer=self._spatial_layer or encoders.DEFAULT_SPATIAL_LAYER)

    def run_inference(self, batch, model, inference_args=None):
        pixels = np.stack(batch)
        if self._spatial_layer:
            outputs = zip(*model.features_and_spatial(pixels))
        else:
            outputs = ((vector, None) for vector in model.features(pixels))
        # The example is left out: carrying 150 kB of pixels per image downstream buys nothing.
        return [PredictionResult(None, output, model.id) for output in outputs]

    def get_num_bytes(self, batch):
        return sum(pixels.nbytes for pixels in batch)

    def get_metrics_namespace(self):
        return 'img2txt_encoder'


class CaptionerModelHandler(ModelHandler):
    """``DecodedImage``s → their top-k captions (lists of ``Candidate``), with an exported captioner.

    Each worker process loads the SavedModel once (local or gs://); the
    captioner runs in fixed batches of ``batch_size`` (``model.serving.captioner``),
    and Beam is asked for batches of that size so that only a bundle's last
    batch is padded. The inference's model id is the export's.
    """

    def __init__(self, model_dir, batch_size=captioner.DEFAULT_BATCH_SIZE, top_k=None):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._top_k = top_k

    def load_model(self):
        return captioner.Captioner.load(self._model_dir, self._batch_size)

    def run_inference(self, batch, model, inference_args=None):
        captions = model.caption(np.stack([image.pixels for image in batch]), self._top_k)
        return [PredictionResult(None, candidates, model.model_id) for candidates in captions]

    def get_num_bytes(self, batch):
        return sum(image.pixels.nbytes for image in batch)

    def get_metrics_namespace(self):
        return 'img2txt_captioner'
