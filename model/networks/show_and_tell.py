"""The Show-and-Tell image captioning model (Vinyals et al., TPAMI 2016).

An LSTM language model conditioned on an image: the image's feature vector,
projected to the word-embedding size, is the LSTM's first input; the words of
the caption follow, one per step, and each step predicts the next word.

    features [B, D] ──image_embedding──▶ [B, E] ─┐ step 0 (its output is unused)
    input_ids [B, T] ──word_embedding──▶ [B, T, E] ┘ steps 1..T
        ──dropout──▶ LSTM ──dropout──▶ logits [B, T, V]

Training feeds a whole caption at once (``call``); decoding runs the same LSTM
cell one step at a time (``initial_state``, then ``step``), which is what
``beam_search`` drives. Both paths use the same weights, so a model trained
with one decodes identically with the other.

Captions are id sequences ``[START, w1 .. wn, END, PAD ...]``: the model reads
``[START, w1 .. wn]`` and is trained to predict ``[w1 .. wn, END]``
(``caption_ops.split_caption_ids``).
"""
import dataclasses
import functools

import keras
import tensorflow as tf

from img2txt.model.config import DecoderConfig
from img2txt.model.networks.caption_ops import uniform_initializer


@dataclasses.dataclass(frozen=True)
class ShowAndTellConfig(DecoderConfig):
    """Sizes and decoding options of the Show-and-Tell model."""


class ShowAndTell(keras.Model):
    """Image features in, next-word logits out.

    All variables exist once the constructor returns, so a
    ``tf.train.Checkpoint`` holding the model restores into it directly and a
    ``tf.function`` calling it creates none.
    """

    def __init__(self, config, name='show_and_tell', **kwargs):
        """Builds the model's layers and weights.

        Args:
          config: a ``ShowAndTellConfig``.
          name: the model's name; other keyword arguments go to ``keras.Model``.
        """
        super().__init__(name=name, **kwargs)
        self.config = config
        dropout_rate = 1.0 - config.lstm_dropout_keep_prob
        initializer = functools.partial(uniform_initializer, config.initializer_scale)

        # Image embedding: a linear map (no bias, no activation, as im2txt)
        # from the encoder's feature vector to the LSTM's input size.
        # [B, feature_dim] -> [B, embedding_size].
        self.image_embedding = keras.layers.Dense(
            config.embedding_size, use_bias=False, kernel_initializer=initializer(),
            name='image_embedding')
        # Word embedding: one learned vector per token id.
        # [B, T] int -> [B, T, embedding_size].
        self.word_embedding = keras.layers.Embedding(
            config.vocab_size, config.embedding_size, embeddings_initializer=initializer(),
            name='word_embedding')
        # im2txt wraps the cell in dropout on its inputs and outputs, never on
        # the recurrent state; the layers below do the same around the LSTM.
        self.input_dropout = keras.layers.Dropout(dropout_rate, name='input_dropout')
        self.output_dropout = keras.layers.Dropout(dropout_rate, name='output_dropout')
        # The LSTM over whole sequences, for training. Its ``cell`` is what
        # ``step`` runs, so both share one set of weights; on a GPU the layer
        # runs as one fused cuDNN kernel with the same arithmetic.
        # [B, T + 1, embedding_size] -> [B, T + 1, lstm_units].
        self.lstm = keras.layers.LSTM(
            config.lstm_units, return_sequences=True, kernel_initializer=initializer(),
            recurrent_initializer=initializer(), name='lstm')
        # Logits over the vocabulary. [..., lstm_units] -> [..., vocab_size].
        self.logits = keras.layers.Dense(
            config.vocab_size, kernel_initializer=initializer(), name='logits')

        self.image_embedding.build((None, config.feature_dim))
        self.word_embedding.build((None, None))
        self.lstm.build((None, None, config.embedding_size))
        self.logits.build((None, config.lstm_units))
        self.built = True

    def call(self, inputs, training=False):
        """Teacher-forced forward pass over whole captions.

        Args:
          inputs: a pair ``(features, input_ids)``: float image features
            ``[B, feature_dim]`` and int caption ids ``[B, T]``, each
            ``[START, w1 .. wn, PAD ...]`` (``caption_ops.split_caption_ids``).
          training: whether to apply dropout.

        Returns:
          Float logits ``[B, T, vocab_size]``: position t predicts the word
          after ``input_ids[:, t]``.
        """
        features, input_ids = inputs
        image_embeddings = self.image_embedding(features)
        seq_embeddings = self.word_embedding(input_ids)
        # The image is the first input step; its output predicts nothing.
        lstm_inputs = tf.concat([image_embeddings[:, tf.newaxis], seq_embeddings], axis=1)
        lstm_inputs = self.input_dropout(lstm_inputs, training=training)
        lstm_outputs = self.lstm(lstm_inputs, training=training)[:, 1:]
        lstm_outputs = self.output_dropout(lstm_outputs, training=training)
        return self.logits(lstm_outputs)

    def initial_state(self, features):
        """Feeds the images to the LSTM: the state the first word is read in.

        Args:
          features: float image features ``[N, feature_dim]``.

        Returns:
          The LSTM state, a pair ``(h, c)`` of float ``[N, lstm_units]``
          tensors; row i belongs to image i, so beam search can tile and
          gather it by row.
        """
        image_embeddings = self.image_embedding(features)
        zeros = tf.zeros([tf.shape(features)[0], self.config.lstm_units], image_embeddings.dtype)
        _, (h, c) = self.lstm.cell(image_embeddings, [zeros, zeros], training=False)
        return h, c

    def step(self, token_ids, state):
        """Reads one token per row and predicts the next one (no dropout).

        Args:
          token_ids: int ``[N]``, the latest token of each row.
          state: the ``(h, c)`` pair from ``initial_state`` or an earlier
            ``step``, ``[N, lstm_units]`` each.

        Returns:
          ``(log_probs, new_state)``: float log-probabilities of the next token
          ``[N, vocab_size]``, and the state after reading ``token_ids``.
        """
        embeddings = self.word_embedding(token_ids)
        outputs, (h, c) = self.lstm.cell(embeddings, list(state), training=False)
        return tf.nn.log_softmax(self.logits(outputs)), (h, c)
