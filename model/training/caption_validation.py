"""Caption quality during training: beam search over a split's stored features, scored as ``img2txt evaluate`` does.

Loss is a poor guide to which checkpoint captions best (im2txt ran a
separate evaluation job for it; self-critical.pytorch's ``language_eval``
scores the val split every so often). ``CaptionValidation`` loads a split's
records once, and each call captions them with the model as it is (beam
search, as the export will) and scores the best captions with
``model.evaluation`` (BLEU-1..4, METEOR where Java is present, ROUGE-L,
CIDEr-D).

The references are the records' captions as the vocabulary reads them:
words rarer than preprocess's ``--min-word-count`` are ``<unk>``, which no
caption contains (beam search never chooses it). The scores therefore run a
little below those of ``img2txt evaluate``, which scores against the
dataset's own text; they rank checkpoints the same way.
"""
import numpy as np
import tensorflow as tf

from img2txt.model import evaluation
from img2txt.model.serving import beam_search
from img2txt.model.training import input_pipeline


class CaptionValidation:
    """Scores a model's beam-search captions of one split of a preprocess output, as the model is at each call."""

    def __init__(self, model, data_dir, split, vocab, *, spatial, beam_size, max_length, length_normalization=0.0,
                 max_images=None, batch_size=64):
        """Reads the split's features and references, and traces the model's search once.

        Args:
          model: the model in training (its weights change between calls, its graph does not).
          data_dir: the preprocess output.
          split: the split to caption, e.g. 'val'.
          vocab: the token list (``schemas.vocabulary.read``).
          spatial: read the spatial maps (attention decoders) instead of the pooled vectors.
          beam_size, max_length, length_normalization: the search, as the export will run it.
          max_images: caption only the split's first this many images (file order); None: all.
          batch_size: images per beam search call.
        """
        records = input_pipeline.image_records(data_dir, split, spatial=spatial)
        if max_images is not None:
            records = records.take(max_images)
        self._image_ids, features, self._references = [], [], {}
        for record in records:
            image_id = record['image_id'].numpy().decode('utf-8')
            self._image_ids.append(image_id)
            features.append(record['features'].numpy())
            self._references[image_id] = [' '.join(vocab[i] for i in caption)
                                          for caption in record['captions'].numpy().tolist()]
        if not features:
            raise ValueError(f'{data_dir} has no {split} images to caption')
        self._features = np.stack(features)
        self._batch_size = batch_size
        words = tf.constant(vocab)
        self._search = tf.function(
            lambda batch: beam_search.texts(beam_search.beam_search(
                model, batch, beam_size, max_length, length_normalization, top_k=1).token_ids, words)[:, 0],
            input_signature=[tf.TensorSpec([None, *self._features.shape[1:]], tf.float32)], autograph=False)
        self.meteor = evaluation.java_available()

    @property
    def num_images(self):
        return len(self._image_ids)

    def captions(self):
        """{image id: best caption} of every image, from the model as it is now."""
        texts = []
        for start in range(0, self.num_images, self._batch_size):
            best = self._search(tf.constant(self._features[start:start + self._batch_size]))
            texts += [text.decode('utf-8') for text in best.numpy()]
        return dict(zip(self._image_ids, texts))

    def __call__(self):
        """The corpus scores of the model's captions now: ``{metric: value}`` (``schemas.evaluation.METRICS``)."""
        corpus, _ = evaluation.score(self.captions(), self._references, meteor=self.meteor)
        return corpus
