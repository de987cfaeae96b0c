"""Error records: one per input that a job could not process, in one format for every job.

Every pipeline routes per-element failures to an errors output instead of
failing the bundle. A record says why with ``REASON_FIELDS``, the same in
every job: the stage where the input failed (one of ``STAGES``), the
exception's class and a one-line message. What names the input depends on
the job: preprocess writes ``SCHEMA`` (``input``: a path, an image id or
``file:line``); the caption job writes ``schemas.captions.ERRORS_SCHEMA``,
the same reason between the photo's identity (``uri``, size, modification
time) and the run's (model, run, time).
"""
import pyarrow as pa

STAGE = 'stage'
INPUT = 'input'
ERROR_TYPE = 'error_type'          # the exception's class name, e.g. CorruptImageError
MESSAGE = 'message'                # one line saying why

# Where in a job an input failed: 'match' a listed file that does not exist,
# 'read' its bytes, 'parse' a caption file's record, 'decode' an image,
# 'encode' or 'infer' a batch through the network, 'write' the output.
STAGES = ('match', 'read', 'parse', 'decode', 'encode', 'infer', 'write')

REASON_FIELDS = (
    pa.field(STAGE, pa.string(), nullable=False),
    pa.field(ERROR_TYPE, pa.string(), nullable=False),
    pa.field(MESSAGE, pa.string(), nullable=False),
)

# Where preprocess writes its records, under its output: PREPROCESS_DIR/PREPROCESS_PREFIX-SSSSS-of-NNNNN.parquet
# (Beam's default shard names), matched by PREPROCESS_PATTERN. The caption job's are in schemas.captions.
PREPROCESS_DIR = 'errors'
PREPROCESS_PREFIX = 'errors'
PARQUET_SUFFIX = '.parquet'
PREPROCESS_PATTERN = f'{PREPROCESS_DIR}/{PREPROCESS_PREFIX}-*{PARQUET_SUFFIX}'

SCHEMA = pa.schema([REASON_FIELDS[0], pa.field(INPUT, pa.string(), nullable=False), *REASON_FIELDS[1:]])


def reason(stage, error_type, message):
    """The ``REASON_FIELDS`` of a record, as a dict; raises ValueError for a stage not in ``STAGES``."""
    if stage not in STAGES:
        raise ValueError(f'unknown stage {stage!r}; expected one of {STAGES}')
    return {STAGE: stage, ERROR_TYPE: error_type, MESSAGE: str(message)}


def record(stage, input_name, error_type, message):
    """Returns one preprocess error record (``SCHEMA``) as the dict the Parquet sink writes."""
    return {INPUT: str(input_name), **reason(stage, error_type, message)}


def from_exception(stage, input_name, exc):
    """Returns the error record for ``exc`` raised while processing ``input_name``."""
    return record(stage, input_name, type(exc).__name__, str(exc) or repr(exc))
