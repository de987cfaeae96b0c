"""Batched beam search over a step-wise caption model, in TensorFlow ops only.

The search follows im2txt's ``CaptionGenerator``, for a whole batch of images
at once: every step runs the model once on ``batch * beam_size`` rows, and the
loop is a ``tf.while_loop``, so ``beam_search`` runs eagerly and inside a
``tf.function`` whose batch size is unknown until run time (an exported
captioner's signature).

At each step every live hypothesis ("beam") proposes its ``beam_size`` most
likely next tokens. A proposal ending in END becomes a finished caption; of
the others the ``beam_size`` most likely stay alive. Per image the
``beam_size`` best finished captions are kept. With ``beam_size`` 1 this is
greedy decoding; with a beam at least as wide as the number of candidate
sequences it is exhaustive search.

Rules:
  - Decoding starts from START. PAD, START and UNK are never emitted, nor
    END as the first token, so every caption has at least one word, and its
    text is exactly its tokens. (A model trained on a real vocabulary gives
    UNK, the rare words, real mass; chosen and then dropped from the text it
    left captions such as "a man standing in front of a". Masking it is
    self-critical.pytorch's ``suppress_UNK``.)
  - END finishes a caption and is not part of its returned tokens or length;
    its log-probability is part of the caption's.
  - A caption that reaches ``max_length`` words without END is finished as it
    is.
  - Log-probabilities are the model's, summed over the caption's tokens
    (banned tokens are masked out, not renormalised away).
  - Finished captions are ranked by ``log_prob / length_penalty(length,
    alpha)`` with GNMT's penalty ``((5 + length) / 6) ** alpha`` (Wu et al.
    2016), ``length`` counting words; alpha 0 ranks by log-probability.
  - Ties go to the hypothesis found first, then to the lower beam and token
    index, so results are deterministic.
  - The search stops early once no live hypothesis of any image can still
    enter that image's best ``beam_size``.
"""
import collections

import tensorflow as tf

from img2txt.schemas import vocabulary

_NEG_INF = float('-inf')


class BeamSearchResult(collections.namedtuple('BeamSearchResult', ['token_ids', 'lengths', 'log_probs'])):
    """Captions per image, best first.

    Fields:
      token_ids: int32 ``[B, top_k, max_length]``: word ids, padded with PAD_ID
        (no START, no END).
      lengths: int32 ``[B, top_k]``: number of words.
      log_probs: float32 ``[B, top_k]``: log-probability of each caption, END
        included when it ended with END.

    A slot with no caption (only when the vocabulary offers fewer captions
    than ``top_k``) has length 0 and log-probability -inf.
    """
    __slots__ = ()


def banned_tokens(vocab_size, position):
    """Bool ``[vocab_size]``: the ids a caption may not have at ``position`` (0: its first token), as above.

    ``position`` may be a column ``[T, 1]`` of positions: the result is then ``[T, vocab_size]``.

    PAD, START and UNK anywhere, END first. Every decoding (beam search,
    self-critical training's sampling) masks the same ids.
    """
    token_ids = tf.range(vocab_size)
    banned = (token_ids == vocabulary.PAD_ID) | (token_ids == vocabulary.START_ID) | (token_ids == vocabulary.UNK_ID)
    return banned | ((token_ids == vocabulary.END_ID) & (position == 0))


def length_penalty(length, alpha):
    """GNMT's length penalty ``((5 + length) / 6) ** alpha``; 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def blockwise_top_k(values, k, block_size=128):
    """``tf.math.top_k`` along the last axis, faster for small k on a CPU.

    The k largest values of a row lie in the k blocks with the largest maxima,
    so one vectorised max per block narrows the search to ``k * block_size``
    candidates. TensorFlow's CPU top-k pushes every element through a heap:
    over a 10k vocabulary at batch 64, beam 3, it cost a third of a decoding
    step, this a tenth. Results, tie order included (lower index first), are
    those of ``tf.math.top_k``.

    Args:
      values: float ``[..., V]`` with a static V >= k.
      k: Python int.
      block_size: elements per block.

    Returns:
      ``(values, indices)``, each ``[..., k]``, as ``tf.math.top_k``.
    """
    values = tf.convert_to_tensor(values)
    size = values.shape[-1]
    num_blocks = -(-size // block_size)
    if num_blocks <= k:
        return tf.math.top_k(values, k)
    # Padding at the end never wins a tie against a real element.
    padding = [[0, 0]] * (values.shape.rank - 1) + [[0, num_blocks * block_size - size]]
    padded = tf.pad(values, padding, constant_values=_NEG_INF)
    outer = tf.shape(values)[:-1]
    blocks = tf.reshape(padded, tf.concat([outer, [num_blocks, block_size]], axis=0))
    _, top_blocks = tf.math.top_k(tf.reduce_max(blocks, axis=-1), k)
    # In index order, so ties among the candidates still go to the lower index.
    top_blocks = tf.sort(top_blocks, axis=-1)
    candidates = tf.gather(blocks, top_blocks, batch_dims=values.shape.rank - 1)
    top_values, best = tf.math.top_k(tf.reshape(candidates, tf.concat([outer, [k * block_size]], axis=0)), k)
    block_index = tf.gather(top_blocks, best // block_size, batch_dims=values.shape.rank - 1)
    return top_values, block_index * block_size + best % block_size


def beam_search(model, features, beam_size, max_length, length_normalization=0.0, top_k=None):
    """Finds the most likely captions of a batch of images.

    Args:
      model: an object with ``initial_state(features) -> state`` and
        ``step(token_ids [N], state) -> (log_probs [N, V], state)``, where
        state is a nest of tensors whose first dimension is N
        (``ShowAndTell``, ``ShowAttendAndTell``). ``V`` must be known when
        tracing.
      features: float image features of any rank, as the model's
        ``initial_state`` takes them: ``[B, D]`` pooled vectors, ``[B, L, D]``
        grids; B may be dynamic.
      beam_size: hypotheses kept per image (Python int >= 1).
      max_length: most words per caption (Python int >= 1).
      length_normalization: alpha of ``length_penalty`` (float >= 0).
      top_k: captions returned per image, at most ``beam_size``; default
        ``beam_size``.

    Returns:
      A ``BeamSearchResult`` (token_ids, lengths, log_probs), best first.
    """
    top_k = beam_size if top_k is None else top_k
    if not (isinstance(beam_size, int) and beam_size >= 1):
        raise ValueError(f'beam_size must be a positive integer, got {beam_size!r}')
    if not (isinstance(max_length, int) and max_length >= 1):
        raise ValueError(f'max_length must be a positive integer, got {max_length!r}')
    if not (isinstance(top_k, int) and 1 <= top_k <= beam_size):
        raise ValueError(f'top_k must be an integer in [1, beam_size={beam_size}], got {top_k!r}')
    if length_normalization < 0:
        raise ValueError(f'length_normalization must be >= 0, got {length_normalization}')

    k = beam_size
    alpha = float(length_normalization)
    features = tf.convert_to_tensor(features, tf.float32)
    batch = tf.shape(features)[0]
    positions = tf.range(max_length)
    # The best score a live hypothesis could still reach: log-probs only fall
    # as words are added, and the penalty is largest at max_length.
    max_penalty = length_penalty(max_length, alpha)

    def select(values, indices):
        """Gathers ``values[b, indices[b, j]]``: [B, n, ...] x [B, m] -> [B, m, ...]."""
        return tf.gather(values, indices, batch_dims=1)

    def select_state(state, beam_indices):
        """Reorders the flat [B * k, ...] model state by beam: row (b, j) <- (b, beam_indices[b, j])."""
        def gather(s):
            beams = tf.reshape(s, tf.concat([[batch, k], tf.shape(s)[1:]], axis=0))
            return tf.ensure_shape(tf.reshape(select(beams, beam_indices), tf.shape(s)), s.shape)
        return tf.nest.map_structure(gather, state)

    def merge_finished(finished, ids, scores, log_probs, lengths):
        """Keeps the k best of the finished captions and new ones; old ones win ties."""
        all_ids, all_scores, all_log_probs, all_lengths = (
            tf.concat([old, new], axis=1) for old, new in zip(finished, (ids, scores, log_probs, lengths)))
        scores, best = tf.math.top_k(all_scores, k)
        return select(all_ids, best), scores, select(all_log_probs, best), select(all_lengths, best)

    def cond(t, last_ids, state, alive_ids, alive_log_probs, finished):
        finished_scores = finished[1]
        # Sorted best first, so column 0 is the best live hypothesis and
        # column -1 the worst finished caption kept.
        can_improve = alive_log_probs[:, 0] / max_penalty >= finished_scores[:, -1]
        return tf.logical_and(t < max_length, tf.reduce_any(can_improve))

    def body(t, last_ids, state, alive_ids, alive_log_probs, finished):
        log_probs, state = model.step(tf.reshape(last_ids, [-1]), state)
        vocab_size = log_probs.shape[-1]
        if vocab_size is None:
            raise ValueError('beam_search needs the vocabulary size of model.step to be static')
        log_probs = tf.where(banned_tokens(vocab_size, t), _NEG_INF, tf.cast(log_probs, tf.float32))
        log_probs = tf.reshape(log_probs, [batch, k, vocab_size])

        # Each beam proposes its best tokens: [B, k, w] -> [B, k * w] candidates.
        words_per_beam = min(k, vocab_size)
        token_log_probs, tokens = blockwise_top_k(log_probs, words_per_beam)
        cand_log_probs = tf.reshape(alive_log_probs[:, :, tf.newaxis] + token_log_probs, [batch, -1])
        cand_tokens = tf.reshape(tokens, [batch, -1])
        cand_beams = tf.tile(tf.repeat(tf.range(k), words_per_beam)[tf.newaxis], [batch, 1])
        cand_prefixes = select(alive_ids, cand_beams)
        is_end = tf.equal(cand_tokens, vocabulary.END_ID)

        # Candidates ending in END are finished as their prefix, of t words.
        end_scores = tf.where(is_end, cand_log_probs / length_penalty(t, alpha), _NEG_INF)
        finished = merge_finished(
            finished, cand_prefixes, end_scores, cand_log_probs, tf.fill(tf.shape(cand_tokens), t))

        # The others append their token, and the best k stay alive.
        alive_log_probs, alive = tf.math.top_k(tf.where(is_end, _NEG_INF, cand_log_probs), k)
        last_ids = select(cand_tokens, alive)
        alive_ids = tf.where(positions == t, last_ids[:, :, tf.newaxis], select(cand_prefixes, alive))
        state = select_state(state, select(cand_beams, alive))
        return t + 1, last_ids, state, alive_ids, alive_log_probs, finished

    state = tf.nest.map_structure(lambda s: tf.repeat(s, k, axis=0), model.initial_state(features))
    # Only beam 0 starts live, so the first step does not propose each
    # first word k times.
    alive_log_probs = tf.tile(tf.constant([[0.0] + [_NEG_INF] * (k - 1)]), [batch, 1])
    alive_ids = tf.fill([batch, k, max_length], vocabulary.PAD_ID)
    finished = (
        alive_ids,
        tf.fill([batch, k], _NEG_INF),
        tf.fill([batch, k], _NEG_INF),
        tf.zeros([batch, k], tf.int32),
    )
    last_ids = tf.fill([batch, k], vocabulary.START_ID)
    t, _, _, alive_ids, alive_log_probs, finished = tf.while_loop(
        cond, body, (tf.constant(0), last_ids, state, alive_ids, alive_log_probs, finished),
        maximum_iterations=max_length)

    # Hypotheses still live at max_length are finished as they are; a search
    # that stopped early has none that could rank.
    full_scores = tf.where(t == max_length, alive_log_probs / max_penalty, _NEG_INF)
    token_ids, scores, log_probs, lengths = merge_finished(
        finished, alive_ids, full_scores, alive_log_probs, tf.fill([batch, k], max_length))

    found = tf.math.is_finite(scores[:, :top_k])
    return BeamSearchResult(
        token_ids=tf.where(found[:, :, tf.newaxis], token_ids[:, :top_k], vocabulary.PAD_ID),
        lengths=tf.where(found, lengths[:, :top_k], 0),
        log_probs=log_probs[:, :top_k])


def texts(token_ids, words):
    """The captions of a search's token ids, in-graph: string ``[B, k]``, each its words joined by spaces.

    Beam search pads with PAD_ID and never returns START, END or UNK (``banned_tokens``),
    so leaving out the reserved ids leaves exactly the caption's words. The export
    and caption validation both turn ids into text here.

    Args:
      token_ids: int ``[B, k, L]``, as ``BeamSearchResult``.
      words: the token list, id -> token (``schemas.vocabulary.read``), or a string tensor of it.
    """
    is_word = token_ids >= vocabulary.NUM_RESERVED
    tokens = tf.where(is_word, tf.gather(words, token_ids) + ' ', '')
    return tf.strings.strip(tf.strings.reduce_join(tokens, axis=-1))
