"""An exported captioner as Python code uses it: loaded once, fed fixed-shape batches.

The SavedModel (``schemas.captioner``) takes any batch size, but its float
results, like the encoder's, depend in the last bits on the batch shape the
CPU kernels were picked for. ``Captioner`` always calls it with
``batch_size`` images, padding the last batch, so an image's captions and
log-probabilities are a function of the image alone, whatever batches a Beam
runner forms, and the signature's graph is specialised once. ``attend`` also
returns, from an attention export, where the decoder looked for each word of
the best caption, through the same batches.
"""
import json
import typing

import numpy as np
import tensorflow as tf

from img2txt.model import batching, storage
from img2txt.model.networks import decoders
from img2txt.model.serving import export
from img2txt.model.input_spec import DEFAULT_MAX_PIXELS, InputSpec
from img2txt.schemas import captioner, manifest
from img2txt.schemas import decoders as decoder_names

DEFAULT_BATCH_SIZE = 32


class Candidate(typing.NamedTuple):
    """One caption of an image: its text, natural-log probability and number of words."""

    caption: str
    log_prob: float
    words: int


class Attended(typing.NamedTuple):
    """An image's best caption and where the attention decoder looked for each of its words."""

    candidate: Candidate
    # float32 [candidate.words, H, W]: row t the weights over the encoder's H x W grid while it
    # chose word t, summing to 1. An unknown word has its row, though the caption's text leaves
    # it out (``schemas.captioner``).
    weights: np.ndarray


class ExportInfo(typing.NamedTuple):
    """What an export says about itself (``schemas.captioner``), derived in one place for every reader."""

    model_id: str
    encoder_id: str
    config: dict
    # The crop the encoder was trained on, from the export itself: never assumed.
    input_spec: InputSpec
    beam_size: int
    feature_dim: int
    decoder: str
    # What caption_features takes per image: the pooled vector, or (attention) the map's cells.
    feature_shape: tuple
    # The decompression-bomb limit the export refuses above.
    max_pixels: int

    @classmethod
    def from_config(cls, model_id, config):
        """The info of an export with id ``model_id`` and config (captioner.json) ``config``."""
        encoder = config[captioner.CONFIG_ENCODER]
        feature_dim = int(encoder[manifest.ENCODER_FEATURE_DIM])
        decoder = decoder_names.of(config, captioner.CONFIG_DECODER)
        feature_shape = decoders.get(decoder).feature_shape(feature_dim, encoder.get(manifest.ENCODER_SPATIAL_SHAPE))
        return cls(model_id=model_id, encoder_id=encoder[manifest.ENCODER_ID], config=config,
                   input_spec=InputSpec(**encoder[manifest.ENCODER_INPUT_SPEC]),
                   beam_size=int(config[captioner.CONFIG_MODEL][captioner.MODEL_BEAM_SIZE]), feature_dim=feature_dim,
                   decoder=decoder, feature_shape=feature_shape,
                   # Exports older than the field had the default.
                   max_pixels=int(config.get(captioner.CONFIG_MAX_PIXELS, DEFAULT_MAX_PIXELS)))

    @classmethod
    def read(cls, export_dir):
        """The info of the export at ``export_dir`` (local or gs://) from its small files, without TensorFlow.

        Raises:
          FileNotFoundError: ``export_dir`` is not an exported captioner.
        """
        def text(name):
            path = export_dir.rstrip('/') + '/' + name
            try:
                return storage.read_bytes(path).decode('utf-8')
            except Exception as e:  # a missing file is an OSError locally, a BeamIOError on gs://
                raise FileNotFoundError(f'{export_dir} is not an exported captioner: cannot read {name} ({e})') from e
        return cls.from_config(text(captioner.MODEL_ID_FILE).strip(), json.loads(text(captioner.CONFIG_FILE)))


class Captioner:
    """A loaded captioner export; ``caption`` turns encoder input crops into captions, ``attend`` into attention.

    ``info`` is its ``ExportInfo``; its fields (``model_id``, ``input_spec``,
    ``beam_size``, ``max_pixels``...) read as attributes of the captioner too.
    """

    def __init__(self, saved_model, batch_size=DEFAULT_BATCH_SIZE):
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
        self._saved_model = saved_model
        self._caption_pixels = saved_model.signatures[captioner.CAPTION_PIXELS]
        self._caption_features = saved_model.signatures[captioner.CAPTION_FEATURES]
        self.batch_size = batch_size
        self.info = ExportInfo.from_config(_text(getattr(saved_model, captioner.MODEL_ID)),
                                           json.loads(_text(getattr(saved_model, captioner.CONFIG))))

    def __getattr__(self, name):
        # Only reached for names the instance lacks: the ExportInfo fields.
        if name in ExportInfo._fields:
            return getattr(self.__dict__['info'], name)
        raise AttributeError(f'{type(self).__name__} has no attribute {name!r}')

    @classmethod
    def load(cls, export_dir, batch_size=DEFAULT_BATCH_SIZE):
        """Loads the export at ``export_dir`` (local or gs://)."""
        return cls(export.load_captioner(export_dir), batch_size)

    def caption(self, pixels, top_k=None):
        """Captions of each image, best first.

        Args:
          pixels: uint8 ``[N, S, S, 3]``, the encoder's input crops
            (``model.serving.image_decoding``, with ``self.input_spec``).
          top_k: captions per image, at most the export's beam size; default all.

        Returns:
          N lists of ``top_k`` ``Candidate``s; slots the beam could not fill
          (a tiny vocabulary) are left out.
        """
        return [candidates for candidates, _ in
                self._fixed_batches(self._caption_pixels, captioner.PIXELS, self._checked_pixels(pixels), top_k)]

    def caption_features(self, features, top_k=None):
        """As ``caption``, from encoder features float32 ``[N, *feature_shape]``.

        Show and Tell takes the pooled vectors ``[N, D]`` (what preprocess
        stores); attention the feature maps' cells ``[N, L, D]`` (L = H x W,
        a map ``[N, H, W, D]`` reshaped; preprocess ``--spatial-features``).
        """
        return [candidates for candidates, _ in self._fixed_batches(
            self._caption_features, captioner.FEATURES, self._checked_features(features), top_k)]

    def attend(self, pixels):
        """Each image's best caption and its attention weights (an attention export's only).

        Args:
          pixels: as ``caption`` takes them.

        Returns:
          N ``Attended``: the caption ``caption(pixels, top_k=1)`` gives, and
          its weights ``[words, H, W]``.

        Raises:
          ValueError: the export is Show and Tell, which has no attention.
        """
        self._check_attention()
        return self._attended(self._fixed_batches(self._caption_pixels, captioner.PIXELS,
                                                  self._checked_pixels(pixels), 1, attention=True))

    def attend_features(self, features):
        """As ``attend``, from the feature maps' cells ``[N, L, D]`` that ``caption_features`` takes."""
        self._check_attention()
        return self._attended(self._fixed_batches(self._caption_features, captioner.FEATURES,
                                                  self._checked_features(features), 1, attention=True))

    def _checked_pixels(self, pixels):
        pixels = np.asarray(pixels, np.uint8)
        size = self.input_spec.size
        if pixels.ndim != 4 or pixels.shape[1:] != (size, size, 3):
            raise ValueError(f'the captioner takes crops of shape [N, {size}, {size}, 3], got {pixels.shape}')
        return pixels

    def _checked_features(self, features):
        features = np.asarray(features, np.float32)
        if features.shape[1:] != self.feature_shape:
            shape = ', '.join(map(str, ('N', *self.feature_shape)))
            raise ValueError(f'the {self.decoder} captioner takes features of shape [{shape}], got {features.shape}')
        return features

    def _check_attention(self):
        if captioner.ATTENTION not in self._caption_pixels.structured_outputs:
            raise ValueError(f'the {self.decoder} captioner {self.model_id} has no {captioner.ATTENTION} output; '
                             'train with --decoder attention')

    @staticmethod
    def _attended(results):
        # The best slot is always filled: a caption that reaches the length limit is finished as it is.
        return [Attended(best, weights[:best.words]) for [best], weights in results]

    def _fixed_batches(self, signature, input_name, inputs, top_k, attention=False):
        """[(``top_k`` candidates, the attention output's [T, H, W] or None)] of each input, in fixed-shape batches."""
        top_k = self.beam_size if top_k is None else top_k
        if not 1 <= top_k <= self.beam_size:
            raise ValueError(f'top_k must be in [1, {self.beam_size}] (the export\'s beam size), got {top_k}')
        results = []
        for batch in batching.fixed_batches(inputs, self.batch_size):
            outputs = signature(**{input_name: tf.constant(batch)})
            captions = export.captions_text(outputs[captioner.CAPTIONS])
            log_probs = outputs[captioner.LOG_PROBS].numpy()
            lengths = outputs[captioner.LENGTHS].numpy()
            weights = outputs[captioner.ATTENTION].numpy() if attention else [None] * len(captions)
            for texts, scores, words, image_weights in zip(captions, log_probs, lengths, weights):
                results.append(([Candidate(text, float(score), int(n))
                                 for text, score, n in zip(texts[:top_k], scores[:top_k], words[:top_k])
                                 if np.isfinite(score)], image_weights))
        return results[:len(inputs)]


def _text(variable):
    return variable.numpy().decode('utf-8')
