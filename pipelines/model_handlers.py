"""RunInference model handlers: how Beam workers load and batch img2txt's models.

Beam's ready-made TensorFlow handlers load with ``tf.keras.models.load_model``
(which under Keras 3 cannot read SavedModels) and import tensorflow_hub, so
img2txt has its own small handlers. Wrapped in ``KeyedModelHandler`` they keep
everything RunInference brings: one model shared per worker process,
``BatchElements`` batching, inference metrics and the dead-letter output of
``with_exception_handling``.
"""
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from img2txt.model import encoders


class EncoderModelHandler(ModelHandler):
    """Decoded ``uint8 [S, S, 3]`` pixels → pooled CNN feature vectors (float32 ``[D]``)."""

    def __init__(self, encoder_name=encoders.DEFAULT, weights=None, min_batch_size=8, max_batch_size=64):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._encoder_name = encoder_name
        self._weights = weights

    def load_model(self):
        return encoders.load(self._encoder_name, weights=self._weights)

    def run_inference(self, batch, model, inference_args=None):
        features = model.features(np.stack(batch))
        # The example is left out: carrying 150 kB of pixels per image downstream buys nothing.
        return [PredictionResult(None, vector, model.id) for vector in features]

    def get_num_bytes(self, batch):
        return sum(pixels.nbytes for pixels in batch)

    def get_metrics_namespace(self):
        return 'img2txt_encoder'
