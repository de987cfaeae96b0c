"""The model dir: everything a training run writes, under one folder (local or gs://).

  config.json               CONFIG_FILE: what the run was asked to do, on which data (fields below)
  checkpoints/ckpt-STEP     CHECKPOINT_DIR, CHECKPOINT_PREFIX: model, optimizer (whose iterations are
                            the global step) and data position
  best/ckpt-STEP            BEST_DIR: the checkpoint whose val captions scored the best CIDEr-D so far
  best/best.json            BEST_FILE: {BEST_STEP, BEST_METRICS} of that checkpoint
  logs/train/, logs/val/    LOG_DIR, TRAIN_LOGS, VALIDATION_LOGS: TensorBoard scalars (tags below)
  export/STEP/              EXPORT_DIR: the exported captioner (schemas.captioner)

``model.training`` writes it; a later run on the same dir resumes from it,
and the report job reads the loss curves back.
"""

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
CHECKPOINT_PREFIX = 'ckpt'
LOG_DIR = 'logs'
EXPORT_DIR = 'export'
BEST_DIR = 'best'
BEST_FILE = 'best.json'
BEST_STEP = 'step'
BEST_METRICS = 'metrics'        # {schemas.evaluation metric name: value}


def export_relative(step):
    """Where a step's export lives, relative to the model dir: ``export/STEP``."""
    return f'{EXPORT_DIR}/{int(step)}'


def export_step(relative):
    """The STEP of a path relative to ``EXPORT_DIR`` whose first folder is a step (``STEP/...``), else None."""
    step = relative.replace('\\', '/').partition('/')[0]
    return int(step) if step.isdigit() else None

# TensorBoard runs under LOG_DIR, one folder each.
TRAIN_LOGS = 'train'
VALIDATION_LOGS = 'val'

# Scalar tags. Both runs log LOSS (mean loss per token) and PERPLEXITY; the
# train run also logs the learning rate and its throughput; the val run, with
# caption validation, the caption metrics under schemas.evaluation's names.
LOSS = 'loss'
PERPLEXITY = 'perplexity'
LEARNING_RATE = 'learning_rate'
STEPS_PER_SECOND = 'steps_per_second'
CAPTIONS_PER_SECOND = 'captions_per_second'
# Self-critical training logs its sampled captions' mean CIDEr-D (the reward) where cross-entropy logs LOSS.
REWARD = 'reward'
IMAGES_PER_SECOND = 'images_per_second'   # its throughput, where cross-entropy logs CAPTIONS_PER_SECOND

# Fields of config.json.
DECODER = 'decoder'                  # one of schemas.decoders.NAMES (older files lack it: decoders.UNNAMED)
MODEL = 'model'                      # the DECODER's config (model.networks.decoders' config class) .to_dict()
TRAINING = 'training'                # TrainingConfig.to_dict()
DATA = 'data'                        # the preprocess output trained on
ENCODER = 'encoder'                  # the data's encoder: {manifest.ENCODER_NAME, manifest.ENCODER_ID}
VOCABULARY_SIZE = 'vocabulary_size'
STRATEGY = 'strategy'                # {STRATEGY_NAME, STRATEGY_REPLICAS}
PRECISION_POLICY = 'precision_policy'  # the Keras dtype policy: 'float32', 'mixed_float16' or 'mixed_bfloat16'
VERSION = 'img2txt_version'

# Fields of the STRATEGY entry: the tf.distribute strategy's class name and its replica count.
STRATEGY_NAME = 'name'
STRATEGY_REPLICAS = 'replicas'
