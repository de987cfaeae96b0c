"""One training step and one validation pass, on every replica of a ``tf.distribute`` strategy.

A train step, on each replica: the forward pass over its share of the batch,
the summed loss of its tokens divided by the token count of the whole batch
(so the step minimises the mean loss per token of the global batch, however
captions fall on replicas), gradients summed over replicas, clipped to a
global norm, applied. Keras would clip each replica's part before summing
them, which with several replicas is not the norm of the batch's gradient, so
the optimizer itself does not clip.

The attention decoder's doubly stochastic penalty joins the summed loss
before that division (``ShowAttendAndTell.doubly_stochastic_loss_sum``). The
loss a step reports, and validation's, is the words' cross-entropy alone, so
that its perplexity is one and both decoders' losses compare.
"""
import keras
import tensorflow as tf

from img2txt.model.attention import ShowAttendAndTell
from img2txt.model.show_and_tell import masked_loss_sum


def make_train_step(strategy, model, optimizer, clip_norm, examples):
    """A ``tf.function`` that trains on an iterator's next batch.

    Args:
      strategy: the ``tf.distribute`` strategy ``model`` and ``optimizer`` were built under.
      model: a ``ShowAndTell`` or a ``ShowAttendAndTell``.
      optimizer: a Keras optimizer that does not clip, or a ``LossScaleOptimizer`` wrapping one.
      clip_norm: the global norm the summed gradient is clipped to; 0 disables.
      examples: an int64 ``tf.Variable`` that the step adds its caption count to.

    Returns:
      ``train_step(iterator)``, taking a distributed dataset's iterator and
      returning the batch's summed token cross-entropy, token count and
      caption count (over all replicas).
    """
    variables = model.trainable_variables
    num_replicas = strategy.num_replicas_in_sync
    loss_scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

    def replica_step(inputs, target_ids):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            loss_sum, num_tokens, penalty_sum = _training_loss_sums(model, inputs, target_ids)
            loss = tf.math.divide_no_nan(loss_sum + penalty_sum,
                                         context.all_reduce(tf.distribute.ReduceOp.SUM, num_tokens))
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
        return loss_sum, num_tokens, tf.shape(target_ids, out_type=tf.int64)[0]

    @tf.function
    def train_step(iterator):
        inputs, target_ids = next(iterator)
        totals = strategy.run(replica_step, args=(inputs, target_ids))
        loss_sum, num_tokens, num_captions = (strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None)
                                              for t in totals)
        examples.assign_add(num_captions)
        return loss_sum, num_tokens, num_captions

    return train_step


def make_validation(strategy, model, dataset):
    """A ``tf.function`` returning the summed token loss and token count over all of ``dataset``.

    Args:
      strategy: the ``tf.distribute`` strategy ``model`` was built under.
      model: a ``ShowAndTell`` or a ``ShowAttendAndTell``.
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


def _training_loss_sums(model, inputs, target_ids):
    """A training forward pass: the summed token cross-entropy, the token count, the summed penalty.

    The penalty is the attention decoder's doubly stochastic term; Show and Tell has none (0).
    """
    if isinstance(model, ShowAttendAndTell):
        logits, attention = model(inputs, training=True, return_attention=True)
        penalty_sum = model.doubly_stochastic_loss_sum(target_ids, attention)
    else:
        logits, penalty_sum = model(inputs, training=True), tf.constant(0.0)
    return (*masked_loss_sum(target_ids, logits), penalty_sum)


def _scale(gradient, factor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor
