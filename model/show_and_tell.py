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
(``split_caption_ids``).
"""
import functools

import keras
import tensorflow as tf

from img2txt.schemas import vocabulary


class ShowAndTell(keras.Model):
    """Image features in, next-word logits out.

    All variables exist once the constructor returns, so a
    ``tf.train.Checkpoint`` holding the model restores into it directly and a
    ``tf.function`` calling it creates none.
    """

    def __init__(self, config, name='show_and_tell', **kwargs):
        """Builds the model's layers and weights.

        Args:
          config: a ``ModelConfig``.
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
            ``[START, w1 .. wn, PAD ...]`` (``split_caption_ids``).
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


def uniform_initializer(scale):
    """A new initializer drawing uniformly from ``[-scale, scale]``; call it once per weight.

    One unseeded Keras initializer reused for several weights draws the same
    values for each.
    """
    return keras.initializers.RandomUniform(-scale, scale)


def split_caption_ids(caption_ids):
    """Splits padded captions into the model's inputs and its targets.

    Args:
      caption_ids: int ``[..., T]``, each caption ``[START, w1 .. wn, END,
        PAD ...]`` (a single caption ``[T]`` or a batch ``[B, T]``).

    Returns:
      ``(input_ids, target_ids)``, each ``[..., T - 1]``: the inputs
      ``[START, w1 .. wn, ...]`` and the targets ``[w1 .. wn, END, ...]``,
      padded with ``PAD_ID`` (which ``masked_loss_sum`` leaves out).
    """
    return caption_ids[..., :-1], caption_ids[..., 1:]


def masked_loss_sum(target_ids, logits):
    """Summed cross-entropy of the non-padding targets, and their number.

    The two parts of ``masked_loss``, for a mean over more tokens than one
    call sees (the replicas of a distributed step, the batches of a
    validation pass).

    Args:
      target_ids: int ``[B, T]``, padded with ``PAD_ID``.
      logits: float ``[B, T, vocab_size]``, from ``ShowAndTell.call``.

    Returns:
      ``(loss_sum, num_tokens)``, two float32 scalars.
    """
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(target_ids, tf.int32), logits=tf.cast(logits, tf.float32))
    mask = tf.cast(tf.not_equal(target_ids, vocabulary.PAD_ID), tf.float32)
    return tf.reduce_sum(losses * mask), tf.reduce_sum(mask)


def masked_loss(target_ids, logits):
    """Mean cross-entropy per target word, padding excluded (im2txt's loss).

    Args:
      target_ids: int ``[B, T]``, padded with ``PAD_ID``.
      logits: float ``[B, T, vocab_size]``, from ``ShowAndTell.call``.

    Returns:
      A float scalar: the summed cross-entropy of the non-padding targets
      divided by their number (0 if there are none).
    """
    return tf.math.divide_no_nan(*masked_loss_sum(target_ids, logits))


def build_optimizer(config, steps_per_epoch):
    """Returns the Keras optimizer a ``TrainingConfig`` describes.

    SGD follows im2txt: the learning rate is multiplied by
    ``learning_rate_decay_factor`` every ``num_epochs_per_decay`` epochs, in
    steps. Adam keeps a constant rate. Neither clips: ``clip_gradients``
    applies to the gradient summed over replicas, which only the train step
    sees (``train_step``).

    Args:
      config: a ``TrainingConfig``.
      steps_per_epoch: training steps in one pass over the captions.
    """
    if config.optimizer == 'adam':
        return keras.optimizers.Adam(config.initial_learning_rate)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.initial_learning_rate,
        decay_steps=max(1, int(steps_per_epoch * config.num_epochs_per_decay)),
        decay_rate=config.learning_rate_decay_factor,
        staircase=True)
    return keras.optimizers.SGD(schedule)
