"""What every caption decoder shares: how captions split into inputs and targets, the loss, the initializer.

Captions are id sequences ``[START, w1 .. wn, END, PAD ...]``: a decoder
reads ``[START, w1 .. wn]`` and is trained to predict ``[w1 .. wn, END]``
(``split_caption_ids``); padding (``PAD_ID``) counts in no loss
(``masked_loss_sum``). Each decoder (``decoders``) builds its weights with
``uniform_initializer``, as im2txt does.
"""
import keras
import tensorflow as tf

from img2txt.schemas import vocabulary


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
      logits: float ``[B, T, vocab_size]``, from a decoder's ``call``.

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
      logits: float ``[B, T, vocab_size]``, from a decoder's ``call``.

    Returns:
      A float scalar: the summed cross-entropy of the non-padding targets
      divided by their number (0 if there are none).
    """
    return tf.math.divide_no_nan(*masked_loss_sum(target_ids, logits))
