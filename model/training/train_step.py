"""One training step and one validation pass, on every replica of a ``tf.distribute`` strategy.

A train step minimises an ``Objective``: cross-entropy (``cross_entropy``)
or self-critical training's reward (``model.training.self_critical``). On each
replica: the objective's summed loss over its share of the batch divided by
its count over the whole batch (tokens: so the step minimises the mean loss
per token of the global batch, however captions fall on replicas),
gradients summed over replicas, clipped to a global norm, applied. Keras
would clip each replica's part before summing them, which with several
replicas is not the norm of the batch's gradient, so the optimizer itself
does not clip.

A decoder's own loss term (the attention decoder's doubly stochastic
penalty) joins the cross-entropy's sum before that division
(``decoders.Decoder.training_pass``). The loss a step reports, and
validation's, is the words' cross-entropy alone, so that its perplexity is
one and both decoders' losses compare.
"""
import dataclasses
from typing import Callable, Optional

import keras
import tensorflow as tf

from img2txt.model.networks.caption_ops import masked_loss_sum
from img2txt.schemas import training_run


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a train step minimises, and the figure it reports.

    ``terms(batch, prepared)`` runs under the gradient tape and returns five
    scalars: the loss summed over the replica's share of the batch, what it
    is a sum over (tokens), the reported figure's sum and count, and the
    examples the batch holds. ``prepare(batch)``, when given, runs before the
    tape (work no gradient flows through, such as sampling captions); its
    result is ``terms``' second argument.
    """

    # The reported figure's name in the log and TensorBoard (schemas.training_run).
    reported: str
    terms: Callable
    prepare: Optional[Callable] = None
    # What one example of the data is, for the throughput line.
    example_name: str = 'captions'


def cross_entropy(decoder, model):
    """Teacher-forced token cross-entropy, plus the decoder's own term.

    Batches are ``((features, input_ids), target_ids)``; it reports the cross-entropy alone.
    """
    def terms(batch, prepared):
        inputs, target_ids = batch
        logits, penalty_sum = decoder.training_pass(model, inputs, target_ids, training=True)
        loss_sum, num_tokens = masked_loss_sum(target_ids, logits)
        return loss_sum + penalty_sum, num_tokens, loss_sum, num_tokens, tf.shape(target_ids, out_type=tf.int64)[0]

    return Objective(training_run.LOSS, terms)


def make_train_step(strategy, model, optimizer, clip_norm, examples, objective):
    """A ``tf.function`` that trains on an iterator's next batch.

    Args:
      strategy: the ``tf.distribute`` strategy ``model`` and ``optimizer`` were built under.
      model: the model.
      optimizer: a Keras optimizer that does not clip, or a ``LossScaleOptimizer`` wrapping one.
      clip_norm: the global norm the summed gradient is clipped to; 0 disables.
      examples: an int64 ``tf.Variable`` that the step adds its example count to.
      objective: the ``Objective``.

    Returns:
      ``train_step(iterator)``, taking a distributed dataset's iterator and
      returning the batch's reported sum and count and its example count
      (over all replicas).
    """
    variables = model.trainable_variables
    num_replicas = strategy.num_replicas_in_sync
    loss_scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

    def replica_step(batch):
        context = tf.distribute.get_replica_context()
        prepared = objective.prepare(batch) if objective.prepare else None
        with tf.GradientTape() as tape:
            loss_sum, loss_count, reported_sum, reported_count, num_examples = objective.terms(batch, prepared)
            loss = tf.math.divide_no_nan(loss_sum, context.all_reduce(tf.distribute.ReduceOp.SUM, loss_count))
            scaled_loss = optimizer.scale_loss(loss)
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, tape.gradient(scaled_loss, variables))
        if clip_norm:
            # Clipping commutes with loss scaling when the threshold scales too.
            scale = optimizer.dynamic_scale if loss_scaling else 1.0
            gradients, _ = tf.clip_by_global_norm(gradients, clip_norm * scale)
        if num_replicas > 1:
            # The optimizer sums the replicas' gradients again, and each already holds the sum.
            # Exact global-norm clipping costs this second all-reduce (about 13M weights at
            # im2txt's sizes with a 10k vocabulary).
            gradients = [_scale(g, 1.0 / num_replicas) for g in gradients]
        optimizer.apply_gradients(zip(gradients, variables))
        return reported_sum, reported_count, num_examples

    @tf.function
    def train_step(iterator):
        totals = strategy.run(replica_step, args=(next(iterator),))
        reported_sum, reported_count, num_examples = (strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None)
                                                      for t in totals)
        examples.assign_add(num_examples)
        return reported_sum, reported_count, num_examples

    return train_step


def make_validation(strategy, model, dataset):
    """A ``tf.function`` returning the summed token loss and token count over all of ``dataset``.

    Args:
      strategy: the ``tf.distribute`` strategy ``model`` was built under.
      model: a model of one of ``decoders``.
      dataset: a ``tf.data.Dataset`` of ``((features, input_ids), target_ids)`` batches.
    """
    distributed = strategy.experimental_distribute_dataset(dataset)

    def replica_step(inputs, target_ids):
        return masked_loss_sum(target_ids, model(inputs, training=False))

    @tf.function
    def validate():
        loss_sum, num_tokens = tf.constant(0.0), tf.constant(0.0)
        for inputs, target_ids in distributed:
            batch_loss, batch_tokens = strategy.run(replica_step, args=(inputs, target_ids))
            loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, batch_loss, axis=None)
            num_tokens += strategy.reduce(tf.distribute.ReduceOp.SUM, batch_tokens, axis=None)
        return loss_sum, num_tokens

    return validate


def _scale(gradient, factor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor
