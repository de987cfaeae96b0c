"""What the caption pipeline writes: caption rows, error rows and run manifests.

Under the output folder (local or gs://), one partition per run, so that a
folder of many runs reads as one table (DuckDB
``read_parquet('OUTPUT/captions/*/*.parquet', hive_partitioning=true)``,
Spark, BigQuery external tables with hive partitioning)::

  captions/run=RUN_ID/part-SSSSS-of-NNNNN.parquet   one row per captioned image (CAPTIONS_SCHEMA)
  errors/run=RUN_ID/part-SSSSS-of-NNNNN.parquet     one row per image that failed (ERRORS_SCHEMA)
  runs/RUN_ID.json                                  the run manifest (schemas.manifest, job 'caption')

Every matched file of a run is in exactly one of: that run's captions, that
run's errors, or (``--incremental``) skipped because an earlier run under the
same output captioned or failed it with the same model, URI, size and
modification time. The manifest's counts add up the same way.
"""
import math

import pyarrow as pa

from img2txt.schemas import errors
from img2txt.schemas.errors import ERROR_TYPE, MESSAGE, STAGE  # noqa: F401 (the error rows' reason columns)

CAPTIONS_DIR = 'captions'
ERRORS_DIR = 'errors'
RUNS_DIR = 'runs'
# The hive partition key: captions/run=RUN_ID/.
PARTITION_KEY = 'run'
PART_PREFIX = 'part'
PARQUET_SUFFIX = '.parquet'

# Columns shared by caption and error rows.
URI = 'uri'                        # the file as matched: a local path or gs://bucket/name
SIZE_BYTES = 'size_bytes'          # from the match, before the file was read
MODIFIED_AT = 'modified_at'        # last modification time, from the match
MODEL_ID = 'model_id'              # the exported captioner's id (schemas.captioner)
RUN_ID = 'run_id'

# Caption rows.
SHA256 = 'sha256'                  # hex digest of the file's bytes
WIDTH = 'width'                    # the image as shown: after EXIF orientation
HEIGHT = 'height'
CAPTION = 'caption'                # the best caption: words joined by spaces
LOG_PROB = 'log_prob'              # its natural-log probability under the model, end token included
# exp(log_prob / (words + 1)): the geometric mean probability of the
# caption's tokens, end token included. Comparable across caption lengths,
# so a threshold filters the captions the model is unsure of.
CONFIDENCE = 'confidence'
CANDIDATES = 'candidates'          # the top-k captions, best first: [{CAPTION, LOG_PROB}]
# True when the caption was copied, without inference, from an earlier run's
# row for a file with the same SHA-256 and model (a copied or renamed photo).
REUSED = 'reused'
ENCODER_ID = 'encoder_id'
CAPTIONED_AT = 'captioned_at'

# Error rows: the photo, why it failed (schemas.errors.REASON_FIELDS: STAGE, ERROR_TYPE, MESSAGE), the run.
FAILED_AT = 'failed_at'

_TIME = pa.timestamp('us', tz='UTC')

CANDIDATE_TYPE = pa.struct([
    pa.field(CAPTION, pa.string(), nullable=False),
    pa.field(LOG_PROB, pa.float64(), nullable=False),
])

CAPTIONS_SCHEMA = pa.schema([
    pa.field(URI, pa.string(), nullable=False),
    pa.field(SIZE_BYTES, pa.int64(), nullable=False),
    pa.field(MODIFIED_AT, _TIME, nullable=False),
    pa.field(SHA256, pa.string(), nullable=False),
    pa.field(WIDTH, pa.int32(), nullable=False),
    pa.field(HEIGHT, pa.int32(), nullable=False),
    pa.field(CAPTION, pa.string(), nullable=False),
    pa.field(LOG_PROB, pa.float64(), nullable=False),
    pa.field(CONFIDENCE, pa.float64(), nullable=False),
    pa.field(CANDIDATES, pa.list_(CANDIDATE_TYPE), nullable=False),
    pa.field(REUSED, pa.bool_(), nullable=False),
    pa.field(MODEL_ID, pa.string(), nullable=False),
    pa.field(ENCODER_ID, pa.string(), nullable=False),
    pa.field(RUN_ID, pa.string(), nullable=False),
    pa.field(CAPTIONED_AT, _TIME, nullable=False),
])

# Size and modification time are null only for stage 'match' (a listed URI
# that does not exist has neither).
ERRORS_SCHEMA = pa.schema([
    pa.field(URI, pa.string(), nullable=False),
    pa.field(SIZE_BYTES, pa.int64()),
    pa.field(MODIFIED_AT, _TIME),
    *errors.REASON_FIELDS,
    pa.field(MODEL_ID, pa.string(), nullable=False),
    pa.field(RUN_ID, pa.string(), nullable=False),
    pa.field(FAILED_AT, _TIME, nullable=False),
])

# What an incremental run reads back from earlier runs: the skip key of
# captions and errors, and what a reused caption copies.
SKIP_COLUMNS = (URI, SIZE_BYTES, MODIFIED_AT, MODEL_ID)
REUSE_COLUMNS = (SHA256, MODEL_ID, URI, WIDTH, HEIGHT, CAPTION, LOG_PROB, CONFIDENCE, CANDIDATES)


def partition(kind, run_id):
    """Relative folder of one run's rows: ``captions/run=RUN_ID`` (kind CAPTIONS_DIR or ERRORS_DIR)."""
    if kind not in (CAPTIONS_DIR, ERRORS_DIR):
        raise ValueError(f'kind must be {CAPTIONS_DIR!r} or {ERRORS_DIR!r}, got {kind!r}')
    return f'{kind}/{PARTITION_KEY}={run_id}'


def all_parts(kind):
    """Glob of every run's Parquet files of ``kind``, relative to the output."""
    return f'{kind}/{PARTITION_KEY}=*/*{PARQUET_SUFFIX}'


def run_of_part(path):
    """The run id of a partition's file path (``.../captions/run=RUN_ID/part-...``), or None for any other path."""
    folders = path.replace('\\', '/').split('/')[:-1]
    key, _, run_id = (folders[-1] if folders else '').partition('=')
    return run_id if key == PARTITION_KEY and run_id else None


def manifest_path(run_id):
    """Relative path of a run's manifest."""
    return f'{RUNS_DIR}/{run_id}.json'


def confidence(log_prob, words):
    """The CONFIDENCE of a caption of ``words`` words with log-probability ``log_prob``."""
    return math.exp(log_prob / (words + 1))
