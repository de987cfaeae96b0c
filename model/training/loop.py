"""Training of a caption model (``decoders``): a custom loop under a ``tf.distribute`` strategy.

    preprocess output ──input_pipeline──▶ train step ──▶ checkpoints, TensorBoard, validation ──▶ export

The loop runs ``train_step``'s distributed step under the strategy and
precision ``distribution`` picks, logs progress to TensorBoard, checkpoints
and validates every so many steps, and exports the captioner at the end.
Everything a run writes lives under its model dir (``schemas.training_run``).

Running ``train`` again on a model dir resumes from its latest checkpoint: the
weights, the optimizer's slots and step (so the learning-rate schedule goes
on where it stopped) and the position in the data, which ``input_pipeline``
rebuilds from the seed (so a resumed run sees the examples an uninterrupted
one would). SIGTERM (a preempted cloud VM) and Ctrl-C stop training after the
current step with a checkpoint.
"""
import dataclasses
import json
import logging
import math
import signal
import threading
import time
from typing import Optional

import keras
import tensorflow as tf

from img2txt.model.networks import decoders, encoders
from img2txt.model.serving import export as captioner_export
from img2txt.model.training import (caption_validation, checkpoints, cider, distribution, input_pipeline,
                                    self_critical, train_step)
from img2txt.model.config import EXPORT_BEST, SELF_CRITICAL, TrainingConfig
from img2txt.model.input_spec import InputSpec
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import evaluation, manifest, training_run

VALIDATION_SPLIT = 'val'
# Model config fields that the training data decides, not the user (grid_cells: the attention decoder's).
DATA_MODEL_FIELDS = ('vocab_size', 'feature_dim', 'grid_cells')

# tf.summary.scalar lives in the tensorboard package, which TensorFlow no
# longer installs; this is the record it writes, which TensorBoard reads as a scalar.
_SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name='scalars'))

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What a call of ``train`` did."""

    # Global step reached, and the step the run started (resumed) from.
    step: int
    start_step: int
    # 'SIGTERM' or 'SIGINT' when a signal stopped training early, else None.
    interrupted_by: Optional[str]
    # Mean loss per token over the run's last logging interval (cross-entropy; None for self-critical training).
    train_loss: Optional[float]
    # Loss and perplexity on the validation split at the end (None without one or when interrupted).
    val_loss: Optional[float]
    val_perplexity: Optional[float]
    # Training throughput after the first step (which includes tracing).
    captions_per_second: Optional[float]
    # The latest checkpoint's path prefix.
    checkpoint: str
    # Where the captioner was exported and its model id (None when interrupted or not asked for).
    export_dir: Optional[str]
    model_id: Optional[str]
    # The trained model, for callers in the same process.
    model: keras.Model = dataclasses.field(repr=False)
    # With caption validation: the step of the checkpoint whose val captions scored the best CIDEr-D,
    # and its scores ({schemas.evaluation metric: value}); else None.
    best_step: Optional[int] = None
    best_metrics: Optional[dict] = None
    # Self-critical training: the mean CIDEr-D of the sampled captions over the last logging interval.
    train_reward: Optional[float] = None


def train(data_dir, model_dir, model_options=None, training_config=None, *, decoder=decoder_names.SHOW_AND_TELL,
          strategy=None, mixed_precision=False, export=True, log=_log.info):
    """Trains (or goes on training) a caption model on a preprocess output.

    Args:
      data_dir: the preprocess output (local or gs://).
      model_dir: where checkpoints, logs, the config and the export go
        (local or gs://). If it holds checkpoints, training resumes from the
        latest.
      model_options: fields of the decoder's config (its ``decoders.Decoder.config_class``)
        other than ``DATA_MODEL_FIELDS`` (which come from the data's
        manifest), as a dict.
      training_config: a ``TrainingConfig``; default ``TrainingConfig()``.
      decoder: a name of ``schemas.decoders.NAMES``: 'show_and_tell' (reads
        the pooled feature vectors) or 'attention' (reads the spatial maps,
        which preprocess stores with --spatial-features).
      strategy: 'default', 'mirrored' or None (see ``distribution.make_strategy``).
      mixed_precision: compute in 16 bits, keep weights in 32 (``distribution.precision_policy``).
      export: export the captioner when training ends (not when interrupted).
      log: called with each progress line.

    Returns:
      A ``TrainResult``.

    Raises:
      FileNotFoundError: ``data_dir`` is not a preprocess output.
      ValueError: bad options, data without the spatial maps the attention
        decoder reads, or ``model_dir`` holds checkpoints of another decoder
        or of a model of another shape, optimizer or encoder.
    """
    config = training_config or TrainingConfig()
    document = input_pipeline.read_manifest(data_dir)
    entry = decoders.get(decoder)
    model_config = _model_config(document, data_dir, entry, model_options or {})
    spatial = entry.reads_spatial_map
    strategy = distribution.make_strategy(strategy)
    policy = distribution.precision_policy(mixed_precision)
    run_config = checkpoints.run_config(data_dir, document, decoder, model_config, config, strategy, policy)
    checkpoint_dir = tf.io.gfile.join(model_dir, training_run.CHECKPOINT_DIR)
    resuming = bool(tf.train.latest_checkpoint(checkpoint_dir))
    if resuming:
        checkpoints.check_resumable(model_dir, run_config)
    elif config.init_from:
        initial_weights = checkpoints.initial_weights(config.init_from, run_config)
    checkpoints.write_config(model_dir, run_config)

    # Weights, dropout and the data order all follow from the seed.
    keras.utils.set_random_seed(config.seed)
    self_critical_run = config.objective == SELF_CRITICAL
    # Self-critical training's examples are images: it samples its own captions.
    examples_per_epoch = input_pipeline.examples_per_epoch(
        document, 'train', 'one' if self_critical_run else config.captions_per_image)
    with strategy.scope(), distribution.dtype_policy(policy):
        model = entry.build(model_config)
        optimizer = _build_optimizer(config, examples_per_epoch / config.batch_size, policy)
        optimizer.build(model.trainable_variables)
    # Training examples consumed so far: where the data stream resumes.
    examples = tf.Variable(0, dtype=tf.int64, trainable=False, name='examples')
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, examples=examples,
                                     dropout_rng=_random_state(model))
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints,
                                         checkpoint_name=training_run.CHECKPOINT_PREFIX)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f'resuming from step {int(optimizer.iterations.numpy())} ({manager.latest_checkpoint})')
    elif config.init_from:
        tf.train.Checkpoint(model=model).restore(initial_weights).expect_partial().assert_existing_objects_matched()
        log(f'starting from the weights of {initial_weights}')

    stream = dict(seed=config.seed, num_epochs=config.num_epochs, start_example=int(examples.numpy()),
                  shuffle_window_size=config.shuffle_window_size, spatial=spatial)
    if self_critical_run:
        dataset = input_pipeline.make_image_dataset(data_dir, 'train', config.batch_size, **stream)
        scorer = cider.CiderD(self_critical.train_references(data_dir))
        log(f'self-critical training: rewards are CIDEr-D against the references of {scorer.num_images} train images, '
            f'{config.self_critical_samples} samples per image')
        objective = self_critical.objective(model, scorer, config.self_critical_samples,
                                            model_config.max_caption_length, config.seed, optimizer.iterations)
    else:
        dataset = input_pipeline.make_dataset(data_dir, 'train', config.batch_size, training=True,
                                              captions_per_image=config.captions_per_image, **stream)
        objective = train_step.cross_entropy(entry, model)
    run_step = train_step.make_train_step(strategy, model, optimizer, config.clip_gradients, examples, objective)
    validate = None
    if input_pipeline.has_split(document, VALIDATION_SPLIT):
        validate = train_step.make_validation(strategy, model, input_pipeline.make_dataset(
            data_dir, VALIDATION_SPLIT, config.batch_size, training=False, spatial=spatial))
    best = _Best(model_dir, model)
    if config.caption_validation_every_steps:
        if not validate:
            raise ValueError(f'--caption-validation-every-steps needs a {VALIDATION_SPLIT!r} split, and {data_dir} '
                             f'has {sorted(document[manifest.SPLITS])}')
        best.validation = caption_validation.CaptionValidation(
            model, data_dir, VALIDATION_SPLIT, input_pipeline.read_vocabulary(data_dir, document), spatial=spatial,
            beam_size=model_config.beam_size, max_length=model_config.max_caption_length,
            length_normalization=model_config.length_normalization, max_images=config.caption_validation_images)

    total_steps = math.ceil(config.num_epochs * examples_per_epoch / config.batch_size)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    loop = _Loop(model_dir, config, optimizer, manager, examples, examples_per_epoch, total_steps, best, objective,
                 log)
    with _StopSignals() as stop, loop:
        if best.validation and config.init_from and not resuming:
            # Where it starts from: the curve's first point, and the checkpoint to beat.
            loop.validate_captions()
        loop.run(run_step, iter(strategy.experimental_distribute_dataset(dataset)), validate, stop)

    result = TrainResult(
        step=loop.step, start_step=loop.start_step, interrupted_by=stop.signal_name,
        train_loss=None if self_critical_run else loop.train_figure,
        train_reward=loop.train_figure if self_critical_run else None,
        val_loss=loop.val_loss, val_perplexity=_perplexity(loop.val_loss),
        captions_per_second=loop.captions_per_second(), checkpoint=manager.latest_checkpoint,
        export_dir=None, model_id=None, model=model, best_step=best.step, best_metrics=best.metrics)
    if stop.signal_name:
        log(f'stopped by {stop.signal_name} at step {loop.step}; checkpoint {manager.latest_checkpoint}')
        return result
    if not export:
        return result
    from_best = config.export_checkpoint == EXPORT_BEST and best.step is not None
    step = best.step if from_best else loop.step
    # The export goes through model.storage, which (unlike the checkpoints) is tested on gs://.
    result.export_dir = tf.io.gfile.join(model_dir, training_run.export_relative(step))
    if tf.io.gfile.exists(result.export_dir):
        log(f'{result.export_dir} exists: step {step} was exported before')
    else:
        restored, _ = checkpoints.restore_model(model_dir, best=from_best)
        result.model_id = export_model(restored, model_config, document, data_dir, result.export_dir)
        which = f'the best checkpoint by val {evaluation.CIDER_D} (step {step})' if from_best else f'step {step}'
        log(f'exported {which} as {result.model_id} to {result.export_dir}')
    return result


def export_model(model, model_config, document, data_dir, export_dir):
    """Exports the captioner with ``model.serving.export``; returns its model id.

    The encoder and its weights are those the preprocess manifest names, so
    the exported captioner computes the features the model was trained on.
    """
    encoder = document[manifest.ENCODER]
    return captioner_export.export_captioner(
        model, model_config, encoder[manifest.ENCODER_NAME], input_pipeline.read_vocabulary(data_dir, document),
        export_dir, encoder_weights=document[manifest.OPTIONS].get('encoder_weights'),
        spatial_layer=encoder.get(manifest.ENCODER_SPATIAL_LAYER, encoders.DEFAULT_SPATIAL_LAYER),
        resize_mode=InputSpec(**encoder[manifest.ENCODER_INPUT_SPEC]).resize_mode)


def _model_config(document, data_dir, decoder, options):
    """The decoder's config: the user's options plus the sizes the data decides.

    Those are the vocabulary size and the feature dim, and for attention the
    grid cells, all of the spatial maps.
    """
    given = sorted(set(options) & set(DATA_MODEL_FIELDS))
    if given:
        raise ValueError(f'{given} come from the training data\'s manifest and cannot be set')
    data_fields = {'vocab_size': document[manifest.VOCABULARY][manifest.VOCABULARY_SIZE]}
    if decoder.reads_spatial_map:
        data_fields['grid_cells'], data_fields['feature_dim'] = input_pipeline.spatial_grid(document, data_dir)
    else:
        data_fields['feature_dim'] = document[manifest.ENCODER][manifest.ENCODER_FEATURE_DIM]
    return decoder.config_class.from_dict({**options, **data_fields})


def _random_state(model):
    """The variables of a model that are not weights: its dropout layers' random generator states.

    A checkpoint of the model alone leaves them out, and a resumed run would
    draw other dropout masks than an uninterrupted one.
    """
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


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


def _build_optimizer(config, steps_per_epoch, policy):
    """The optimizer ``config`` names, with loss scaling when ``policy`` needs it."""
    return distribution.with_loss_scaling(build_optimizer(config, steps_per_epoch), policy)


class _Totals:
    """The reported figure's sum and count and the examples of some steps, and when the first of them started."""

    def __init__(self, step):
        self.step = step
        self.started = time.perf_counter()
        self.reported_sum = self.reported_count = 0.0
        self.examples = 0

    def add(self, reported_sum, reported_count, examples):
        self.reported_sum += reported_sum
        self.reported_count += reported_count
        self.examples += examples

    def mean(self):
        """The reported figure's mean (loss per token, reward per sample)."""
        return self.reported_sum / max(self.reported_count, 1.0)


class _Best:
    """Caption validation and the best checkpoint it found: ``best/`` of the model dir (a resumed run reads it)."""

    def __init__(self, model_dir, model):
        self.validation = None
        self._directory = tf.io.gfile.join(model_dir, training_run.BEST_DIR)
        self._manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), self._directory, max_to_keep=1,
                                                   checkpoint_name=training_run.CHECKPOINT_PREFIX)
        self.step = self.metrics = None
        path = tf.io.gfile.join(self._directory, training_run.BEST_FILE)
        if self._manager.latest_checkpoint and tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                saved = json.load(f)
            self.step, self.metrics = saved[training_run.BEST_STEP], saved[training_run.BEST_METRICS]

    def validate(self, step):
        """Scores the model's val captions; keeps its weights when their CIDEr-D is the best yet. Returns the scores."""
        metrics = self.validation()
        if self.metrics is None or metrics[evaluation.CIDER_D] > self.metrics[evaluation.CIDER_D]:
            self._manager.save(checkpoint_number=step)
            self.step, self.metrics = step, metrics
            with tf.io.gfile.GFile(tf.io.gfile.join(self._directory, training_run.BEST_FILE), 'w') as f:
                f.write(json.dumps({training_run.BEST_STEP: step, training_run.BEST_METRICS: metrics}, indent=2,
                                   sort_keys=True) + '\n')
        return metrics


class _Loop:
    """The step loop and its periodic work: progress, TensorBoard, checkpoints, validation."""

    def __init__(self, model_dir, config, optimizer, manager, examples, examples_per_epoch, total_steps, best,
                 objective, log):
        self._config = config
        self._objective = objective
        self._optimizer = optimizer
        self._manager = manager
        self._examples = examples
        self._examples_per_epoch = examples_per_epoch
        self._total_steps = total_steps
        self._log = log
        self._writers = {split: tf.summary.create_file_writer(tf.io.gfile.join(model_dir, training_run.LOG_DIR, split))
                         for split in (training_run.TRAIN_LOGS, training_run.VALIDATION_LOGS)}
        self.step = self.start_step = int(optimizer.iterations.numpy())
        self._saved_step = self.step if manager.latest_checkpoint else None
        self._validated_step = self._captions_validated_step = None
        self._best = best
        self.train_figure = self.val_loss = None
        self._interval = _Totals(self.step)  # Since the last progress report.
        self._timed = None  # Since the end of the first step, which includes tracing.

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for writer in self._writers.values():
            writer.close()

    def run(self, run_step, iterator, validate, stop):
        """Trains until the data or ``max_steps`` runs out or ``stop`` is set, then checkpoints."""
        max_steps = self._config.max_steps
        while stop.signal_name is None and (max_steps is None or self.step < max_steps):
            try:
                totals = [t.numpy().item() for t in run_step(iterator)]
            except tf.errors.OutOfRangeError:
                break
            self._interval.add(*totals)
            if self._timed is None:
                self._timed = _Totals(self.step)
            else:
                self._timed.add(*totals)
            step = int(self._optimizer.iterations.numpy())
            if step == self.step:
                continue  # Loss scaling skipped the update: nothing new to report.
            self.step = step
            if step % self._config.log_every_steps == 0:
                self._report()
            if step % self._config.checkpoint_every_steps == 0:
                self._save()
            if validate and self._config.validation_every_steps and step % self._config.validation_every_steps == 0:
                self._validate(validate)
            every = self._config.caption_validation_every_steps
            if self._best.validation and step % every == 0:
                self.validate_captions()
        if self._interval.examples:
            self._report()
        self._save()
        if validate and stop.signal_name is None and self._validated_step != self.step:
            self._validate(validate)
        if self._best.validation and stop.signal_name is None and self._captions_validated_step != self.step:
            self.validate_captions()

    def captions_per_second(self):
        """Training examples (captions; self-critical: images) per second after the first step; None if it ran one
        step or none."""
        if self._timed is None or not self._timed.examples:
            return None
        return self._timed.examples / (time.perf_counter() - self._timed.started)

    def _report(self):
        interval = self._interval
        seconds = time.perf_counter() - interval.started
        self.train_figure = interval.mean()
        learning_rate = float(tf.convert_to_tensor(self._optimizer.learning_rate))
        steps_per_second = (self.step - interval.step) / seconds
        examples_per_second = interval.examples / seconds
        epoch = int(self._examples.numpy()) / self._examples_per_epoch
        reported, examples = self._objective.reported, self._objective.example_name
        self._log(f'step {self.step}/{self._total_steps} (epoch {epoch:.2f}): {reported} {self.train_figure:.4f}, '
                  f'learning rate {learning_rate:.3g}, {steps_per_second:.2f} steps/s, '
                  f'{examples_per_second:.1f} {examples}/s')
        scalars = {reported: self.train_figure, training_run.LEARNING_RATE: learning_rate,
                   training_run.STEPS_PER_SECOND: steps_per_second,
                   training_run.CAPTIONS_PER_SECOND if examples == 'captions' else training_run.IMAGES_PER_SECOND:
                       examples_per_second}
        if reported == training_run.LOSS:
            scalars[training_run.PERPLEXITY] = _perplexity(self.train_figure)
        _write_scalars(self._writers[training_run.TRAIN_LOGS], self.step, scalars)
        self._interval = _Totals(self.step)

    def _save(self):
        if self._saved_step != self.step:
            self._manager.save(checkpoint_number=self.step)
            self._saved_step = self.step

    def _validate(self, validate):
        loss_sum, num_tokens = (float(t) for t in validate())
        self.val_loss = loss_sum / max(num_tokens, 1.0)
        self._validated_step = self.step
        self._log(f'validation at step {self.step}: loss {self.val_loss:.4f}, '
                  f'perplexity {_perplexity(self.val_loss):.2f} ({int(num_tokens)} words)')
        _write_scalars(self._writers[training_run.VALIDATION_LOGS], self.step,
                       {training_run.LOSS: self.val_loss, training_run.PERPLEXITY: _perplexity(self.val_loss)})


    def validate_captions(self):
        """Captions the val split, scores it, logs the scores and keeps the checkpoint when it is the best yet."""
        started = time.perf_counter()
        best_before = self._best.step
        metrics = self._best.validate(self.step)
        self._captions_validated_step = self.step
        shown = (evaluation.CIDER_D, evaluation.BLEU[3], evaluation.METEOR)
        scores = ', '.join(f'{name} {metrics[name]:.4f}' for name in shown if isinstance(metrics[name], float))
        news = 'the best yet' if self._best.step == self.step and best_before != self.step else (
            f'best {evaluation.CIDER_D} {self._best.metrics[evaluation.CIDER_D]:.4f} at step {self._best.step}')
        self._log(f'val captions at step {self.step}: {scores} ({self._best.validation.num_images} images, '
                  f'{time.perf_counter() - started:.0f} s); {news}')
        _write_scalars(self._writers[training_run.VALIDATION_LOGS], self.step,
                       {name: metrics[name] for name in shown if isinstance(metrics[name], float)})


class _StopSignals:
    """Turns SIGTERM and SIGINT into a request to stop after the current step.

    A cloud VM about to be preempted sends SIGTERM and waits a little;
    stopping between steps leaves a checkpoint that resumes exactly. A second
    signal of the same kind acts as it would without this (Ctrl-C twice
    aborts at once).
    """

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        # Python lets only the main thread install handlers; elsewhere signals keep their usual effect.
        if threading.current_thread() is threading.main_thread():
            for signum in self._SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _perplexity(loss):
    # exp overflows float64 above ~709; such a model is untrained anyway.
    return None if loss is None else math.exp(min(loss, 700.0))


def _write_scalars(writer, step, scalars):
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.write(name, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)
    writer.flush()
