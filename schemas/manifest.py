"""Run manifests: the small JSON file every job writes next to its outputs.

A manifest says what went in, what came out and how: inputs, counts, model
and encoder ids, options, start and end time. Jobs downstream read it instead
of guessing (training reads the preprocess manifest for the feature dimension,
storage dtype, vocabulary and splits). Its fields are the constants below;
``validate`` checks that a manifest has the ones its job requires.
"""
import json

from img2txt.schemas import errors, training_records, vocabulary

FILE_NAME = 'manifest.json'
FORMAT_VERSION = 1

# Fields every manifest has.
FORMAT = 'format_version'
JOB = 'job'
VERSION = 'img2txt_version'
INPUTS = 'inputs'
OPTIONS = 'options'
COUNTS = 'counts'
STARTED_AT = 'started_at'
FINISHED_AT = 'finished_at'

# Preprocess: what the training job needs to read the records.
DATASET = 'dataset'
ENCODER = 'encoder'              # {ENCODER_NAME, ENCODER_ID, ENCODER_FEATURE_DIM, ENCODER_SPATIAL_SHAPE,
                                 #  ENCODER_SPATIAL_LAYER, ENCODER_INPUT_SPEC}
FEATURE_DTYPE = 'feature_dtype'  # 'float32' or 'float16' (schemas.training_records)
# How the records store the encoder's spatial map ('float16' or 'float32'), or None when they
# hold none; its [H, W, C] is the ENCODER entry's ENCODER_SPATIAL_SHAPE. Manifests written
# before spatial maps lack the field: their records hold none.
SPATIAL_DTYPE = 'spatial_dtype'
VOCABULARY = 'vocabulary'        # {VOCABULARY_PATH, VOCABULARY_SIZE, VOCABULARY_MIN_COUNT}
SPLITS = 'splits'                # {split: {SPLIT_IMAGES, SPLIT_CAPTIONS, SPLIT_SHARDS, SPLIT_PATTERN}}
ERRORS = 'errors'                # path pattern of the error-record Parquet files

# Fields of the ENCODER entry: the encoder's name, its id (name@weights hash),
# its feature length, the [H, W, C] of its spatial map (absent in manifests
# written before spatial features), which map that is (model.networks.encoders'
# SPATIAL_LAYERS; absent in manifests written before the choice: 'head', the
# map the features pool) and its InputSpec as a dict.
ENCODER_NAME = 'name'
ENCODER_ID = 'id'
ENCODER_FEATURE_DIM = 'feature_dim'
ENCODER_SPATIAL_SHAPE = 'spatial_shape'
ENCODER_SPATIAL_LAYER = 'spatial_layer'
ENCODER_INPUT_SPEC = 'input_spec'

# Fields of the VOCABULARY entry: the file (relative to the output), the
# number of tokens (reserved included) and the minimum word count.
VOCABULARY_PATH = 'file'
VOCABULARY_SIZE = 'size'
VOCABULARY_MIN_COUNT = 'min_count'

# Fields of each SPLITS entry: images and captions written, shard count and
# the shards' glob relative to the output.
SPLIT_IMAGES = 'images'
SPLIT_CAPTIONS = 'captions'
SPLIT_SHARDS = 'shards'
SPLIT_PATTERN = 'pattern'

# Count names shared by every job: images in = written + failed.
IMAGES_READ = 'images_read'
IMAGES_WRITTEN = 'images_written'
IMAGES_FAILED = 'images_failed'
CAPTIONS_READ = 'captions_read'
CAPTIONS_WRITTEN = 'captions_written'
CAPTIONS_FAILED = 'captions_failed'
# Preprocess counts: error records of the caption dataset's reader (a bad line, an empty caption), and of all stages.
DATASET_ERRORS = 'dataset_errors'
ERROR_RECORDS = 'error_records'

# Caption runs (schemas.captions): the model, the run and its throughput.
MODEL = 'model'                  # the export directory captioned with
MODEL_ID = 'model_id'
RUN_ENCODER_ID = 'encoder_id'    # the captioner's encoder id (ENCODER_ID is the field of an ENCODER entry)
RUN_ID = 'run_id'
IMAGES_PER_SECOND = 'images_per_second'  # images inferred / wall time of the pipeline
OUTPUTS = 'outputs'              # {'captions': glob, 'errors': glob} of this run's Parquet files

# Caption counts: matched = skipped + captioned + failed; reused <= captioned.
MATCHED = 'matched'
SKIPPED = 'skipped'
CAPTIONED = 'captioned'
REUSED = 'reused'
FAILED = 'failed'
CAPTION_COUNTS = (MATCHED, SKIPPED, CAPTIONED, REUSED, FAILED)

_COMMON = (FORMAT, JOB, VERSION, INPUTS, OPTIONS, COUNTS, STARTED_AT, FINISHED_AT)
REQUIRED = {
    'preprocess': _COMMON + (DATASET, ENCODER, FEATURE_DTYPE, VOCABULARY, SPLITS, ERRORS),
    'caption': _COMMON + (MODEL, MODEL_ID, RUN_ENCODER_ID, RUN_ID, IMAGES_PER_SECOND, OUTPUTS),
}


def validate(manifest, job):
    """Returns ``manifest`` if it is a ``job`` manifest with every required field, else raises ValueError."""
    if manifest.get(JOB) != job:
        raise ValueError(f'expected a {job} manifest, got job={manifest.get(JOB)!r}')
    if manifest.get(FORMAT) != FORMAT_VERSION:
        raise ValueError(f'unsupported manifest format_version {manifest.get(FORMAT)!r} (this img2txt reads '
                         f'{FORMAT_VERSION})')
    missing = [field for field in REQUIRED[job] if field not in manifest]
    if missing:
        raise ValueError(f'{job} manifest lacks {", ".join(missing)}')
    return manifest


def loads(data, job, source):
    """The ``job`` manifest in ``data`` (bytes or text read from ``source``), validated: every reader parses here.

    Raises:
      ValueError: one line naming ``source``: not JSON, or not a valid ``job`` manifest.
    """
    try:
        return validate(json.loads(data), job)
    except (ValueError, AttributeError) as e:  # AttributeError: JSON that is not an object
        raise ValueError(f'{source}: {e}') from None


def preprocess_manifest(*, version, inputs, options, counts, started_at, finished_at, dataset, encoder,
                        feature_dtype, vocabulary_size, min_word_count, splits, spatial_dtype=None):
    """The manifest of a preprocess output, from its parts.

    The paths in it (vocabulary, shards, error records) are those preprocess
    writes, relative to its output.

    Args:
      version: the img2txt version that wrote the output.
      inputs: what was read, ``{name: path}``.
      options: the preprocess options, as a dict.
      counts: ``{count name: n}`` (IMAGES_READ, ..., ERROR_RECORDS).
      started_at, finished_at: when the run started and finished, ISO 8601.
      dataset: the caption dataset's format.
      encoder: ``{ENCODER_NAME, ENCODER_ID, ENCODER_FEATURE_DIM, ...}``, the encoder's description.
      feature_dtype: how the features are stored ('float32' or 'float16').
      vocabulary_size: the number of tokens in the vocabulary file, reserved ones included.
      min_word_count: how often a word had to occur in the train split to be learned.
      splits: ``{split: (images, captions, shards)}``, what was written of each split.
      spatial_dtype: how the spatial maps are stored ('float16' or 'float32'), or None
        when the records hold none.
    """
    return {
        FORMAT: FORMAT_VERSION,
        JOB: 'preprocess',
        VERSION: version,
        INPUTS: inputs,
        OPTIONS: options,
        COUNTS: counts,
        STARTED_AT: started_at,
        FINISHED_AT: finished_at,
        DATASET: dataset,
        ENCODER: encoder,
        FEATURE_DTYPE: feature_dtype,
        SPATIAL_DTYPE: spatial_dtype,
        VOCABULARY: {VOCABULARY_PATH: vocabulary.VOCABULARY_FILE, VOCABULARY_SIZE: vocabulary_size,
                     VOCABULARY_MIN_COUNT: min_word_count},
        SPLITS: {split: {SPLIT_IMAGES: images, SPLIT_CAPTIONS: captions, SPLIT_SHARDS: shards,
                         SPLIT_PATTERN: training_records.shard_pattern(split)}
                 for split, (images, captions, shards) in splits.items()},
        ERRORS: errors.PREPROCESS_PATTERN,
    }


def dumps(manifest):
    """The manifest as stable, human-readable JSON text."""
    return json.dumps(manifest, indent=2, sort_keys=True) + '\n'
