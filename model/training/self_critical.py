"""Self-critical sequence training: optimise the CIDEr-D of sampled captions directly (Rennie et al., CVPR 2017).

Cross-entropy trains a decoder to predict the next word of a human caption
given the previous human words; at test time it reads its own words and is
judged on whole captions. Self-critical training closes that gap with
REINFORCE: for each image it samples captions from the model as it decodes
(``sample``), scores each against the image's training references with
CIDEr-D (``model.training.cider``, document frequencies from the whole train split),
and raises the log-probability of the captions that scored above a baseline,
lowers that of the others:

    loss = - sum over samples s, tokens t of (r(s) - b(s)) * log p(s_t | s_<t, image)
           / number of sampled tokens (END included)

The baseline ``b(s)`` is the mean reward of the image's other samples (the
"new self-critical" of Luo 2020, self-critical.pytorch's default), which
needs no extra greedy decode and is unbiased. Sampling masks the ids beam
search never emits (``beam_search.banned_tokens``: no ``<unk>``), in the
graph, without dropout; the gradient comes from a teacher-forced pass over the
samples through the decoder's ``call`` (same weights, same probabilities as
the steps that sampled them), so it works for every decoder of
``model.networks.decoders`` through their shared step interface.

The run starts from a cross-entropy model (``TrainingConfig.init_from``) with
a small Adam rate by default (``config.SELF_CRITICAL_LEARNING_RATE``, 5e-5, as
self-critical.pytorch's recipes): users of SCST report CIDEr falling when it
starts at larger rates. Samples are drawn from
(seed, step) alone, so a resumed run samples what an uninterrupted one would.
"""
import numpy as np
import tensorflow as tf

from img2txt.model.serving import beam_search
from img2txt.model.training import input_pipeline
from img2txt.model.training.train_step import Objective
from img2txt.schemas import training_run, vocabulary

# A banned id's logit: zero probability without the NaNs an infinity would put in the gradient.
_MASKED = -1e9


def sample(model, features, num_samples, max_length, seed):
    """Draws ``num_samples`` captions per image from the model, in TensorFlow ops.

    Args:
      model: a decoder with ``initial_state`` and ``step`` (``model.networks.decoders``).
      features: ``[B, ...]``, as the model reads them.
      num_samples: captions per image (Python int >= 1).
      max_length: most words per caption; one that reaches it ends there, with END only if drawn next.
      seed: int64 ``[2]``, the stateless seed of the draws.

    Returns:
      int32 ``[B * num_samples, max_length + 1]``: image i's samples in rows
      ``i * num_samples ...``, each its words, END (unless it reached
      ``max_length`` words without), then PAD.
    """
    features = tf.repeat(tf.convert_to_tensor(features, tf.float32), num_samples, axis=0)
    rows = tf.shape(features)[0]
    state = model.initial_state(features)

    def body(t, last_ids, state, done, tokens):
        log_probs, state = model.step(last_ids, state)
        vocab_size = log_probs.shape[-1]
        logits = tf.where(beam_search.banned_tokens(vocab_size, t), float('-inf'), tf.cast(log_probs, tf.float32))
        drawn = tf.random.stateless_categorical(logits, 1, tf.random.experimental.stateless_fold_in(seed, t),
                                                dtype=tf.int32)[:, 0]
        # After max_length words only END may follow; a caption that draws another word there stops as it is,
        # as beam search finishes one, and the draw counts in no loss. (Forcing END instead would teach the
        # model, from every long caption that scored badly, that END is unlikely.)
        drawn = tf.where((t == max_length) & (drawn != vocabulary.END_ID), vocabulary.PAD_ID, drawn)
        drawn = tf.where(done, vocabulary.PAD_ID, drawn)
        return t + 1, drawn, state, done | tf.equal(drawn, vocabulary.END_ID), tokens.write(t, drawn)

    _, _, _, _, tokens = tf.while_loop(
        lambda t, last_ids, state, done, tokens: tf.logical_and(t <= max_length, ~tf.reduce_all(done)),
        body,
        (tf.constant(0), tf.fill([rows], vocabulary.START_ID), state, tf.zeros([rows], tf.bool),
         tf.TensorArray(tf.int32, size=max_length + 1, element_shape=[None])),
        maximum_iterations=max_length + 1)
    # Steps the loop skipped, all of them after every caption ended, are padding.
    written = tf.transpose(tokens.stack())
    return tf.pad(written, [[0, 0], [0, max_length + 1 - tf.shape(written)[1]]], constant_values=vocabulary.PAD_ID)


def new_self_critical_advantages(rewards, num_samples):
    """Each sample's reward minus the mean reward of its image's other samples: ``[B * K]`` -> ``[B * K]``."""
    per_image = tf.reshape(rewards, [-1, num_samples])
    others = (tf.reduce_sum(per_image, axis=1, keepdims=True) - per_image) / (num_samples - 1)
    return tf.reshape(per_image - others, [-1])


def train_references(data_dir, split='train'):
    """``{image_id: [caption ids + [END], ...]}`` of a split's records: what rewards score against."""
    references = {}
    for record in input_pipeline.image_records(data_dir, split):
        references[record['image_id'].numpy().decode('utf-8')] = [
            [*caption, vocabulary.END_ID] for caption in record['captions'].numpy().tolist()]
    return references


def objective(model, scorer, num_samples, max_length, seed, step):
    """The self-critical ``train_step.Objective`` over batches of ``(features, image_ids)``.

    Args:
      model: the decoder being trained.
      scorer: a ``cider.CiderD`` of the train split's references (``train_references``).
      num_samples: captions sampled per image (>= 2: the baseline is the others' mean).
      max_length: most words per sampled caption.
      seed: the run's seed (int).
      step: the optimizer's step counter; with ``seed`` it seeds the step's draws.

    The reported figure is the mean reward (CIDEr-D) of the samples.
    """
    if num_samples < 2:
        raise ValueError(f'self-critical training needs at least 2 samples per image, got {num_samples}')

    def rewards(image_ids, token_ids):
        ids = [image_id.decode('utf-8') for image_id in image_ids]
        return scorer.scores(np.repeat(ids, num_samples), [_ids_to_end(row) for row in token_ids])

    def prepare(batch):
        features, image_ids = batch
        step_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 1], tf.int64), step)
        tokens = sample(model, features, num_samples, max_length, step_seed)
        reward = tf.numpy_function(rewards, [image_ids, tokens], tf.float32, stateful=False)
        return tokens, tf.ensure_shape(reward, [None])

    def terms(batch, prepared):
        features, _ = batch
        tokens, reward = prepared
        input_ids = tf.concat([tf.fill([tf.shape(tokens)[0], 1], vocabulary.START_ID), tokens[:, :-1]], axis=1)
        logits = tf.cast(model((tf.repeat(features, num_samples, axis=0), input_ids), training=False), tf.float32)
        # The probabilities the samples were drawn from: the banned ids masked at each position. (With the
        # model's own softmax the gradient would differ from the sampled policy's by a term that drifts mass
        # into ids that are never sampled, until the allowed ones are left with none and the policy collapses.)
        banned = beam_search.banned_tokens(logits.shape[-1], tf.range(tf.shape(tokens)[1])[:, tf.newaxis])  # [T, V]
        logits = tf.where(banned[tf.newaxis], _MASKED, logits)
        token_log_probs = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tokens, logits=logits)
        mask = tf.cast(tf.not_equal(tokens, vocabulary.PAD_ID), tf.float32)
        advantages = new_self_critical_advantages(reward, num_samples)
        loss_sum = -tf.reduce_sum(advantages[:, tf.newaxis] * token_log_probs * mask)
        return (loss_sum, tf.reduce_sum(mask), tf.reduce_sum(reward), tf.cast(tf.size(reward), tf.float32),
                tf.shape(features, out_type=tf.int64)[0])

    return Objective(training_run.REWARD, terms, prepare, example_name='images')


def _ids_to_end(row):
    """A sampled row's ids up to and including END (all of them when it has none)."""
    ends = np.flatnonzero(row == vocabulary.END_ID)
    return row[:ends[0] + 1].tolist() if len(ends) else row[row != vocabulary.PAD_ID].tolist()
