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
from img2txt.model.networks import decoders
from img2txt.model.training import distribution
from img2txt.model.config import TrainingConfig
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import manifest, training_run

# What a checkpoint's variables depend on besides the decoder's shape fields (``decoders.Decoder.shape_fields``);
# the objective decides what its step and data position count (captions or images).
_TRAINING_LAYOUT = ('optimizer', 'objective')


def run_config(data_dir, document, decoder, model_config, training_config, strategy, policy):
    """The contents of config.json: what a run was asked to do, on which data.

    Args:
      data_dir: the preprocess output trained on.
      document: its manifest.
      decoder: the decoder's name (one of ``schemas.decoders.NAMES``).
      model_config: its config (the decoder's ``config_class``).
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

    The message is one line naming each setting that differs. Nothing is
    written: call it before ``write_config``.

    Args:
      model_dir: a model dir that holds checkpoints.
      requested: the ``run_config`` of the run that would resume them.
    """
    path = tf.io.gfile.join(model_dir, training_run.CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(f'{model_dir} has checkpoints but no {training_run.CONFIG_FILE}: cannot tell what model '
                         f'they hold')
    _check_same_model(model_dir, _read_json(path), requested, with_training=True,
                      advice='use a new --model-dir, or the settings it was trained with')


def initial_weights(model_dir, requested):
    """The checkpoint a run starting from another model dir's weights (``TrainingConfig.init_from``) restores.

    Its best checkpoint by val CIDEr-D (``training_run.BEST_DIR``) when it has
    one, else its latest. The model must be the one ``requested`` describes
    (decoder, the shape fields, the encoder); the optimizer may differ, as it
    starts anew.

    Raises:
      FileNotFoundError: ``model_dir`` holds no config or no checkpoint.
      ValueError: it holds another model (one line naming what differs).
    """
    path = tf.io.gfile.join(model_dir, training_run.CONFIG_FILE)
    found = [tf.train.latest_checkpoint(tf.io.gfile.join(model_dir, directory))
             for directory in (training_run.BEST_DIR, training_run.CHECKPOINT_DIR)]
    found = [checkpoint for checkpoint in found if checkpoint]
    if not tf.io.gfile.exists(path) or not found:
        raise FileNotFoundError(f'--init-from {model_dir} holds no trained model (no {training_run.CONFIG_FILE} or '
                                f'no checkpoint)')
    _check_same_model(model_dir, _read_json(path), requested, with_training=False,
                      advice='start from a model of the same decoder, sizes and encoder')
    return found[0]


def _check_same_model(model_dir, saved_config, requested, with_training, advice):
    saved_decoder, wanted_decoder = _decoder(saved_config), _decoder(requested)
    if saved_decoder != wanted_decoder:
        raise ValueError(f'{model_dir} holds checkpoints of the {saved_decoder} decoder, not {wanted_decoder}: '
                         f'use a new --model-dir, or --decoder {saved_decoder}')
    saved, wanted = _layout(saved_config, with_training), _layout(requested, with_training)
    differences = [f'{name} {saved[name]!r} -> {wanted[name]!r}' for name in saved if saved[name] != wanted[name]]
    if differences:
        raise ValueError(f'{model_dir} holds checkpoints of another model ({"; ".join(differences)}): {advice}')


def restore_model(model_dir, best=False):
    """Rebuilds the model a model dir's config describes, with its latest checkpoint's weights.

    With ``best``, the weights of the best checkpoint by val CIDEr-D (``training_run.BEST_DIR``) instead.

    The model is float32 whatever precision it was trained in, and outside
    any distribution strategy: what export and evaluation want.

    Returns:
      ``(model, model_config)``: the model of the decoder the config names and its config.

    Raises:
      FileNotFoundError: ``model_dir`` has no config or no checkpoint.
    """
    config_path = tf.io.gfile.join(model_dir, training_run.CONFIG_FILE)
    latest = tf.train.latest_checkpoint(
        tf.io.gfile.join(model_dir, training_run.BEST_DIR if best else training_run.CHECKPOINT_DIR))
    if not tf.io.gfile.exists(config_path) or not latest:
        raise FileNotFoundError(f'{model_dir} holds no trained model (no {training_run.CONFIG_FILE} or no checkpoint)')
    config = _read_json(config_path)
    decoder = decoders.get(_decoder(config))
    model_config = decoder.config_class.from_dict(config[training_run.MODEL])
    with distribution.dtype_policy(distribution.FLOAT32):
        model = decoder.build(model_config)
    # expect_partial: the optimizer and data position are not wanted here.
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return model, model_config


def _layout(config, with_training=True):
    """What a checkpoint's variables depend on, as flat ``{name: value}`` (the optimizer's too ``with_training``)."""
    decoder = decoders.get(_decoder(config))
    # Through the config class, so that a field added since the file was written reads as its default.
    model_config = decoder.config_class.from_dict(config[training_run.MODEL])
    layout = {f'{training_run.MODEL}.{name}': getattr(model_config, name) for name in decoder.shape_fields}
    layout['encoder'] = config[training_run.ENCODER][manifest.ENCODER_ID]
    if with_training:
        training = TrainingConfig.from_dict(config[training_run.TRAINING])
        layout.update({f'{training_run.TRAINING}.{name}': getattr(training, name) for name in _TRAINING_LAYOUT})
        # Loss scaling adds optimizer variables.
        layout['loss_scaling'] = distribution.uses_loss_scaling(config[training_run.PRECISION_POLICY])
    return layout


def _decoder(config):
    return decoder_names.of(config, training_run.DECODER)


def _read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
