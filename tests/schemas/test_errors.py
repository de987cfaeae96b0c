"""One error format: preprocess's error records and the caption job's error rows say why in the same columns."""
import pyarrow as pa
import pytest

from img2txt.pipelines import caption
from img2txt.schemas import captions, errors


def _reason(schema):
    return [schema.field(field.name) for field in errors.REASON_FIELDS]


def test_both_jobs_write_the_same_reason_columns():
    assert _reason(errors.SCHEMA) == _reason(captions.ERRORS_SCHEMA) == list(errors.REASON_FIELDS)


def test_a_preprocess_record_and_a_caption_row_of_one_failure_hold_the_same_reason():
    exc = ValueError('cannot identify image file')
    record = errors.from_exception('decode', 'images/a.jpg', exc)
    context = caption.RunContext(model_id='show_and_tell@0', encoder_id='efficientnet_lite0@0', run_id='r1')
    row = caption.error_row(context, 'decode', 'images/a.jpg', type(exc).__name__, str(exc))
    assert {f.name: record[f.name] for f in errors.REASON_FIELDS} == {f.name: row[f.name] for f in errors.REASON_FIELDS}
    pa.Table.from_pylist([record], errors.SCHEMA)
    pa.Table.from_pylist([row], captions.ERRORS_SCHEMA)


@pytest.mark.parametrize('write', [lambda: errors.record('resize', 'x', 'E', 'm'),
                                   lambda: caption.error_row(None, 'resize', 'x', 'E', 'm')])
def test_an_unknown_stage_is_refused_in_either_job(write):
    with pytest.raises(ValueError, match="unknown stage 'resize'"):
        write()
