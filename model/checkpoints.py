"""What the checkpoints of a model dir (``schemas.training_run``) hold: its config.json says.

A run writes config.json before its first step. A later run on the same dir
resumes from its checkpoints only if the variables they hold are those the
new run would build (``check_resumable``); ``restore_model`` rebuilds the
model from the config and the latest checkpoint, for export.

The model dir goes through TensorFlow's own file systems, which checkpoints
and summaries need. Its GCS client cannot be pointed at an emulator, so a
gs:// model dir is not tested here.
"""
import json

import tensorflow as tf

import img2txt
from img2txt.model import decoders, distribution
from img2txt.schemas import manifest, training_run

# What a checkpoint's variables depend on, besides the decoder: a run may resume another only if these match.
_SHARED_MODEL_LAYOUT = ('vocab_size', 'feature_dim', 'embedding_size', 'lstm_units')
_MODEL_LAYOUT = {
    training_run.SHOW_AND_TELL: _SHARED_MODEL_LAYOUT,
    # grid_cells sizes no weight, but a model trained on one grid would attend over another.
    training_run.ATTENTION: _SHARED_MODEL_LAYOUT + ('attention_units', 'grid_cells', 'gate'),
}
_TRAINING_LAYOUT = ('optimizer',)


def run_config(data_dir, document, decoder, model_config, training_config, strategy, policy):
    """The contents of config.json: what a run was asked to do, on which data.

    Args:
      data_dir: the preprocess output trained on.
      document: its manifest.
      decoder: the decoder's name (one of ``training_run.DECODERS``).
      model_config: its config (``decoders.config_class``).
      training_config: the ``TrainingConfig``.
      strategy: the ``tf.distribute`` strategy trained under.
      policy: the Keras dtype policy's name (``distribution.precision_policy``).
    """
    encoder = document[manifest.ENCODER]
    return {
        training_run.DECODER: decoder,
        training_run.MODEL: model_config.to_dict(),
        training_run.TRAINING: training_config.to_dict(),
        training_run.DATA: data_dir,
        training_run.ENCODER: {manifest.ENCODER_NAME: encoder[manifest.ENCODER_NAME],
                               manifest.ENCODER_ID: encoder[manifest.ENCODER_ID]},
        training_run.VOCABULARY_SIZE: document[manifest.VOCABULARY][manifest.VOCABULARY_SIZE],
        training_run.STRATEGY: {training_run.STRATEGY_NAME: type(strategy).__name__,
                                training_run.STRATEGY_REPLICAS: strategy.num_replicas_in_sync},
        training_run.PRECISION_POLICY: policy,
        training_run.VERSION: img2txt.__version__,
    }


def write_config(model_dir, config):
    """Writes ``run_config``'s output as the model dir's config.json, creating the dir."""
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(tf.io.gfile.join(model_dir, training_run.CONFIG_FILE), 'w') as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + '\n')


def check_resumable(model_dir, requested):
    """Raises ValueError if the checkpoints in ``model_dir`` are not of the model ``requested`` describes.

    Args:
      model_dir: a model dir that holds checkpoints.
      requested: the ``run_config`` of the run that would resume them.
    """
    path = tf.io.gfile.join(model_dir, training_run.CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(f'{model_dir} has checkpoints but no {training_run.CONFIG_FILE}: cannot tell what model '
                         f'they hold')
    saved_config = _read_json(path)
    saved_decoder, wanted_decoder = _decoder(saved_config), _decoder(requested)
    if saved_decoder != wanted_decoder:
        raise ValueError(f'{model_dir} holds checkpoints of the {saved_decoder} decoder, not {wanted_decoder}: '
                         f'use a new --model-dir, or --decoder {saved_decoder}')
    saved, wanted = _layout(saved_config), _layout(requested)
    differences = [f'{name} {saved[name]!r} -> {wanted[name]!r}' for name in saved if saved[name] != wanted[name]]
    if differences:
        raise ValueError(f'{model_dir} holds checkpoints of another model ({"; ".join(differences)}): '
                         f'use a new --model-dir, or the settings it was trained with')


def restore_model(model_dir, best=False):
    """Rebuilds the model a model dir's config describes, with its latest checkpoint's weights.

    With ``best``, the weights of the best checkpoint by val CIDEr-D (``training_run.BEST_DIR``) instead.

    The model is float32 whatever precision it was trained in, and outside
    any distribution strategy: what export and evaluation want.

    Returns:
      ``(model, model_config)``: a ``ShowAndTell`` and its ``ModelConfig``, or
      a ``ShowAttendAndTell`` and its ``AttentionConfig`` (as the config's decoder says).

    Raises:
      FileNotFoundError: ``model_dir`` has no config or no checkpoint.
    """
    config_path = tf.io.gfile.join(model_dir, training_run.CONFIG_FILE)
    latest = tf.train.latest_checkpoint(
        tf.io.gfile.join(model_dir, training_run.BEST_DIR if best else training_run.CHECKPOINT_DIR))
    if not tf.io.gfile.exists(config_path) or not latest:
        raise FileNotFoundError(f'{model_dir} holds no trained model (no {training_run.CONFIG_FILE} or no checkpoint)')
    config = _read_json(config_path)
    decoder = _decoder(config)
    model_config = decoders.config_class(decoder).from_dict(config[training_run.MODEL])
    with distribution.dtype_policy(distribution.FLOAT32):
        model = decoders.build_model(decoder, model_config)
    # expect_partial: the optimizer and data position are not wanted here.
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return model, model_config


def _layout(config):
    """What a checkpoint's variables depend on, as flat ``{name: value}``."""
    sections = {training_run.MODEL: _MODEL_LAYOUT[_decoder(config)], training_run.TRAINING: _TRAINING_LAYOUT}
    layout = {f'{section}.{name}': config[section][name] for section, names in sections.items() for name in names}
    layout['encoder'] = config[training_run.ENCODER][manifest.ENCODER_ID]
    # Loss scaling adds optimizer variables.
    layout['loss_scaling'] = distribution.uses_loss_scaling(config[training_run.PRECISION_POLICY])
    return layout


def _decoder(config):
    # Runs from before the attention decoder wrote no decoder name: they trained Show and Tell.
    return config.get(training_run.DECODER, training_run.SHOW_AND_TELL)


def _read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
