"""Error records: one per input that a pipeline could not process.

Every pipeline routes per-element failures to an errors output instead of
failing the bundle; the records are written as Parquet with ``SCHEMA``. The
stage says where the input failed, ``input`` names it (a path, an image id or
``file:line``), and ``error_type`` plus ``message`` say why.
"""
import pyarrow as pa

STAGE = 'stage'
INPUT = 'input'
ERROR_TYPE = 'error_type'
MESSAGE = 'message'

# Where in a pipeline an input failed.
STAGES = ('read', 'parse', 'decode', 'encode', 'infer', 'write')

# Where preprocess writes its records, under its output: PREPROCESS_DIR/PREPROCESS_PREFIX-SSSSS-of-NNNNN.parquet
# (Beam's default shard names), matched by PREPROCESS_PATTERN. The caption job's are in schemas.captions.
PREPROCESS_DIR = 'errors'
PREPROCESS_PREFIX = 'errors'
PARQUET_SUFFIX = '.parquet'
PREPROCESS_PATTERN = f'{PREPROCESS_DIR}/{PREPROCESS_PREFIX}-*{PARQUET_SUFFIX}'

SCHEMA = pa.schema([
    pa.field(STAGE, pa.string(), nullable=False),
    pa.field(INPUT, pa.string(), nullable=False),
    pa.field(ERROR_TYPE, pa.string(), nullable=False),
    pa.field(MESSAGE, pa.string(), nullable=False),
])


def record(stage, input_name, error_type, message):
    """Returns one error record as the dict the Parquet sink writes."""
    if stage not in STAGES:
        raise ValueError(f'unknown stage {stage!r}; expected one of {STAGES}')
    return {STAGE: stage, INPUT: str(input_name), ERROR_TYPE: error_type, MESSAGE: str(message)}


def from_exception(stage, input_name, exc):
    """Returns the error record for ``exc`` raised while processing ``input_name``."""
    return record(stage, input_name, type(exc).__name__, str(exc) or repr(exc))
