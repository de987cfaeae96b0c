"""The soft-attention caption decoder of Show, Attend and Tell (Xu et al., ICML 2015).

Show and Tell sees an image once, as one pooled vector. This decoder keeps the
encoder's grid of feature vectors (one per cell of its last feature map) and,
before every word, looks at the grid again: additive (Bahdanau) attention
scores each cell against the LSTM's previous state, and the weighted mean of
the cells, the context, is part of that step's input and output.

    features a [B, L, D] ──mean──▶ init_h, init_c ──▶ h_0, c_0
    at step t, from h_{t-1}:
      α_t = softmax_L(w · tanh(W_a a + W_h h_{t-1} + b))    [B, L], sums to 1
      z_t = β_t Σ_l α_tl a_l,  β_t = sigmoid(w_β · h_{t-1})  [B, D]  (the gate)
      h_t, c_t = LSTM([E y_{t-1}; z_t], h_{t-1}, c_{t-1})    (inject_context=False: LSTM(E y_{t-1}, ...))
      logits_t = L_o tanh(E y_{t-1} + L_h h_t + L_z z_t)     [B, V]  (deep output)

With ``inject_context`` off the LSTM reads only the words (Tanti et al.'s
"merge"): it is a language model that chooses where to look, and what it
sees reaches the next word only through the output layer. The language
state then cannot learn that a shape never follows a colour in the training
captions by way of the image; on the demo's held-out colour-shape pairs that
is the difference (``benchmarks/decoders.py``).

The output layer is the paper's deep output (its eq. 7) with the tanh of the
authors' code: the next word depends on the previous word, the state and the
context, each mapped to the embedding size. Dropout (rate 1 -
``lstm_dropout_keep_prob``) applies to the word embeddings and to the deep
output's hidden layer, both outside the recurrence, so that training and
decoding run the same recurrence and a step keeps no dropout state.

Training feeds whole captions (``call``, a ``tf.scan`` over time); decoding
runs the same recurrence one step at a time (``initial_state``, then
``step``), the interface ``beam_search`` drives, as for ``ShowAndTell``.
Where the model looked for each word of a caption (beam search's best, for
an export) comes from ``attention_weights``, a teacher-forced pass over that
caption, not from the search's state. Captions and their split into inputs
and targets are every decoder's (``caption_ops.split_caption_ids``); the
loss is ``caption_ops.masked_loss_sum`` plus ``doubly_stochastic_loss_sum``.
"""
import dataclasses
import functools

import keras
import tensorflow as tf

from img2txt.model.config import DecoderConfig, check, option
from img2txt.model.networks.caption_ops import uniform_initializer
from img2txt.schemas import vocabulary


@dataclasses.dataclass(frozen=True)
class AttentionConfig(DecoderConfig):
    """Sizes and options of the soft-attention decoder.

    The options of Show, Attend and Tell (Xu et al. 2015), its gate and its
    doubly stochastic penalty with lambda 1, are on by default.
    """

    attention_units: int = option(512, help='size of the hidden layer of the additive attention that scores each '
                                            'grid cell against the LSTM state')
    # Lite0's last feature map at 224x224 input is 7x7.
    grid_cells: int = option(49, help="number of grid cells (height x width of the encoder's feature map) each "
                                      'image has a feature vector for')
    gate: bool = option(True, help='scale the attended context by a gate sigmoid(w . h) learned from the LSTM '
                                   'state, as the paper does')
    # The paper's decoder injects the context into the LSTM. Without it the
    # LSTM reads only words: a language model that decides where to look,
    # while what it sees reaches the next word through the output layer alone
    # (the "merge" architecture of Tanti et al., 2018).
    inject_context: bool = option(True, help='feed the attended context to the LSTM as well as to the output layer, '
                                             'as the paper does; --no-inject-context: to the output layer only, so '
                                             'the LSTM reads only the words and chooses where to look')
    doubly_stochastic_weight: float = option(1.0, help='lambda of the doubly stochastic attention penalty '
                                                       'lambda * sum over cells of (1 - attention summed over '
                                                       'the caption) ** 2, added to the loss; 0 disables it')

    def __post_init__(self):
        super().__post_init__()
        for name in ('attention_units', 'grid_cells'):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, f'{name} must be a positive integer, got {value!r}')
        check(isinstance(self.gate, bool), f'gate must be a bool, got {self.gate!r}')
        check(isinstance(self.inject_context, bool), f'inject_context must be a bool, got {self.inject_context!r}')
        check(self.doubly_stochastic_weight >= 0,
               f'doubly_stochastic_weight must be >= 0, got {self.doubly_stochastic_weight}')


class ShowAttendAndTell(keras.Model):
    """A grid of image features in, next-word logits (and attention weights) out.

    All variables exist once the constructor returns, as for ``ShowAndTell``.
    """

    def __init__(self, config, name='show_attend_and_tell', **kwargs):
        """Builds the model's layers and weights.

        Args:
          config: an ``AttentionConfig``.
          name: the model's name; other keyword arguments go to ``keras.Model``.
        """
        super().__init__(name=name, **kwargs)
        self.config = config
        dropout_rate = 1.0 - config.lstm_dropout_keep_prob
        initializer = functools.partial(uniform_initializer, config.initializer_scale)

        def dense(units, name, **options):
            return keras.layers.Dense(units, kernel_initializer=initializer(), name=name, **options)

        # Initial state: h_0 and c_0 from the mean of the cells, each through
        # a one-layer tanh MLP (the authors' code). [B, D] -> [B, lstm_units].
        self.init_h = dense(config.lstm_units, 'init_h', activation='tanh')
        self.init_c = dense(config.lstm_units, 'init_c', activation='tanh')
        # Word embedding. [B, T] int -> [B, T, embedding_size].
        self.word_embedding = keras.layers.Embedding(
            config.vocab_size, config.embedding_size, embeddings_initializer=initializer(),
            name='word_embedding')
        # Additive attention. The cells' projection W_a a does not depend on
        # the step, so it is computed once per image ([B, L, attention_units])
        # and carried in the decoding state; each step projects only h.
        self.feature_projection = dense(config.attention_units, 'feature_projection', use_bias=False)
        self.state_projection = dense(config.attention_units, 'state_projection')
        # A bias would shift every cell's score alike, which softmax ignores.
        self.attention_score = dense(1, 'attention_score', use_bias=False)
        # The gate β lets a step take little from the image (function words).
        self.gate = dense(1, 'gate', activation='sigmoid') if config.gate else None
        # [B, embedding_size (+ feature_dim when injecting the context)] -> [B, lstm_units].
        self.lstm_cell = keras.layers.LSTMCell(
            config.lstm_units, kernel_initializer=initializer(), recurrent_initializer=initializer(),
            name='lstm_cell')
        # Deep output: L_h h_t and L_z z_t added to the word's embedding.
        self.output_state = dense(config.embedding_size, 'output_state')
        self.output_context = dense(config.embedding_size, 'output_context', use_bias=False)
        self.logits = dense(config.vocab_size, 'logits')
        self.input_dropout = keras.layers.Dropout(dropout_rate, name='input_dropout')
        self.output_dropout = keras.layers.Dropout(dropout_rate, name='output_dropout')

        for layer in (self.init_h, self.init_c, self.feature_projection, self.output_context):
            layer.build((None, config.feature_dim))
        for layer in (self.state_projection, self.output_state) + ((self.gate,) if self.gate else ()):
            layer.build((None, config.lstm_units))
        self.attention_score.build((None, config.attention_units))
        self.word_embedding.build((None, None))
        self.lstm_cell.build((None, config.embedding_size + (config.feature_dim if config.inject_context else 0)))
        self.logits.build((None, config.embedding_size))
        self.built = True

    def call(self, inputs, training=False, return_attention=False):
        """Teacher-forced forward pass over whole captions.

        Args:
          inputs: a pair ``(features, input_ids)``: float grid features
            ``[B, grid_cells, feature_dim]`` and int caption ids ``[B, T]``,
            each ``[START, w1 .. wn, PAD ...]`` (``split_caption_ids``).
          training: whether to apply dropout.
          return_attention: also return the attention weights.

        Returns:
          Float logits ``[B, T, vocab_size]``: position t predicts the word
          after ``input_ids[:, t]``. With ``return_attention``, the pair
          ``(logits, attention)``, where ``attention[:, t]`` ``[B, T,
          grid_cells]`` are the weights position t read the grid with (each
          row sums to 1 over the cells).
        """
        features, input_ids = inputs
        h, c, features, projected_features = self.initial_state(features)
        embeddings = self.input_dropout(self.word_embedding(input_ids), training=training)

        def recur(previous, step_embeddings):
            h, c, _, _ = previous
            return self._recur(step_embeddings, h, c, features, projected_features)

        batch = tf.shape(features)[0]
        initializer = (h, c, tf.zeros([batch, self.config.feature_dim], h.dtype),
                       tf.zeros([batch, self.config.grid_cells], h.dtype))
        # Time-major for the scan, back to batch-major: [T, B, ...] <-> [B, T, ...].
        h, _, contexts, attention = (
            tf.transpose(x, [1, 0, 2])
            for x in tf.scan(recur, tf.transpose(embeddings, [1, 0, 2]), initializer=initializer))
        logits = self._deep_output(embeddings, h, contexts, training)
        return (logits, attention) if return_attention else logits

    def initial_state(self, features):
        """The decoding state the first word (START) is read in.

        Args:
          features: float grid features ``[N, grid_cells, feature_dim]``.

        Returns:
          ``(h, c, features, projected_features)``: the LSTM state ``[N,
          lstm_units]`` twice, the features and their attention projection
          ``[N, grid_cells, attention_units]``. Row i of each belongs to image
          i, so beam search tiles and reorders all four by row.
        """
        # Beam search reorders the features with h and c at every step,
        # although all beams of an image share them: at batch 64, beam 3 and
        # a 7x7x1280 grid it copies 67 MB a step, which cost about 10% of the
        # search on a 2-core CPU (against a step that closed over the tiled
        # features). That buys one state protocol and one beam search for
        # both decoders.
        features = tf.ensure_shape(tf.cast(features, self.compute_dtype),
                                   [None, self.config.grid_cells, self.config.feature_dim])
        mean = tf.reduce_mean(features, axis=1)
        return self.init_h(mean), self.init_c(mean), features, self.feature_projection(features)

    def step(self, token_ids, state):
        """Reads one token per row and predicts the next one (no dropout).

        Args:
          token_ids: int ``[N]``, the latest token of each row.
          state: the state from ``initial_state`` or an earlier ``step``.

        Returns:
          ``(log_probs, new_state)``: float log-probabilities of the next token
          ``[N, vocab_size]``, and the state after reading ``token_ids``.
        """
        h, c, features, projected_features = state
        embeddings = self.word_embedding(token_ids)
        h, c, context, _ = self._recur(embeddings, h, c, features, projected_features)
        logits = self._deep_output(embeddings, h, context, training=False)
        return tf.nn.log_softmax(logits), (h, c, features, projected_features)

    def attention_weights(self, features, token_ids):
        """Where the model looked for each word of given captions.

        One teacher-forced pass over the captions (beam search's best, say):
        it computes the same recurrence the search's steps did for them, so
        the search itself need not carry each hypothesis's weights.

        Args:
          features: float grid features ``[B, grid_cells, feature_dim]``.
          token_ids: int ``[B, T]``, one caption per image as
            ``BeamSearchResult.token_ids`` holds it: words, then PAD (no
            START, no END).

        Returns:
          float32 ``[B, T, grid_cells]``: row t the attention weights of the
          step that chose word t (summing to 1); rows past a caption's last
          word are 0.
        """
        token_ids = tf.cast(token_ids, tf.int32)
        start = tf.fill([tf.shape(token_ids)[0], 1], vocabulary.START_ID)
        input_ids = tf.concat([start, token_ids[:, :-1]], axis=1)
        _, attention = self((features, input_ids), return_attention=True)
        is_word = tf.not_equal(token_ids, vocabulary.PAD_ID)[..., tf.newaxis]
        return tf.where(is_word, tf.cast(attention, tf.float32), 0.0)

    def doubly_stochastic_loss_sum(self, target_ids, attention):
        """The doubly stochastic penalty λ Σ_l (1 - Σ_t α_tl)², summed over captions.

        Softmax makes each step's weights sum to 1 over the cells; the penalty
        pushes each cell's weights to sum to about 1 over the caption, so
        that every part of the image is looked at (Xu et al., eq. 14). Only
        real steps count: those whose target is not padding.

        The paper adds it per caption to the caption's summed cross-entropy.
        Added to ``masked_loss_sum``'s sum before the division by the token
        count, it keeps that ratio of the two terms.

        Args:
          target_ids: int ``[B, T]``, padded with ``PAD_ID``.
          attention: float ``[B, T, grid_cells]``, from ``call`` with
            ``return_attention``.

        Returns:
          A float32 scalar: ``doubly_stochastic_weight`` times the penalty
          summed over the batch's captions.
        """
        is_real = tf.cast(tf.not_equal(target_ids, vocabulary.PAD_ID), tf.float32)[..., tf.newaxis]
        cell_totals = tf.reduce_sum(tf.cast(attention, tf.float32) * is_real, axis=1)
        return self.config.doubly_stochastic_weight * tf.reduce_sum(tf.square(1.0 - cell_totals))

    def _recur(self, embeddings, h, c, features, projected_features):
        """One step of the recurrence: attend from ``h``, then read the word and the context.

        Returns ``(h, c, context, attention)`` after the step: the new LSTM
        state ``[N, lstm_units]``, the (gated) context ``[N, feature_dim]``
        and the attention weights ``[N, grid_cells]`` it was read with.
        """
        hidden = tf.tanh(projected_features + self.state_projection(h)[:, tf.newaxis])
        attention = tf.nn.softmax(self.attention_score(hidden)[..., 0], axis=-1)
        context = tf.einsum('nl,nld->nd', attention, features)
        if self.gate is not None:
            context *= self.gate(h)
        lstm_input = tf.concat([embeddings, context], axis=-1) if self.config.inject_context else embeddings
        _, (h, c) = self.lstm_cell(lstm_input, [h, c], training=False)
        return h, c, context, attention

    def _deep_output(self, embeddings, h, context, training):
        """Logits from the previous word's embedding, the new state and the context ([..., vocab_size])."""
        hidden = tf.tanh(embeddings + self.output_state(h) + self.output_context(context))
        return self.logits(self.output_dropout(hidden, training=training))
