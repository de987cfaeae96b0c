"""Run manifests: the small JSON file every job writes next to its outputs.

A manifest says what went in, what came out and how: inputs, counts, model
and encoder ids, options, start and end time. Jobs downstream read it instead
of guessing (training reads the preprocess manifest for the feature dimension,
storage dtype, vocabulary and splits). Its fields are the constants below;
``validate`` checks that a manifest has the ones its job requires.
"""
import json

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
ENCODER = 'encoder'              # {ENCODER_NAME, ENCODER_ID, ENCODER_FEATURE_DIM, ENCODER_INPUT_SPEC}
FEATURE_DTYPE = 'feature_dtype'  # 'float32' or 'float16' (schemas.training_records)
VOCABULARY = 'vocabulary'        # {VOCABULARY_PATH, VOCABULARY_SIZE, VOCABULARY_MIN_COUNT}
SPLITS = 'splits'                # {split: {SPLIT_IMAGES, SPLIT_CAPTIONS, SPLIT_SHARDS, SPLIT_PATTERN}}
ERRORS = 'errors'                # path pattern of the error-record Parquet files

# Fields of the ENCODER entry: the encoder's name, its id (name@weights hash),
# its feature length and its InputSpec as a dict.
ENCODER_NAME = 'name'
ENCODER_ID = 'id'
ENCODER_FEATURE_DIM = 'feature_dim'
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


def dumps(manifest):
    """The manifest as stable, human-readable JSON text."""
    return json.dumps(manifest, indent=2, sort_keys=True) + '\n'
