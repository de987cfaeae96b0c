"""Reading a training model dir: its latest export and the scalar curves of its TensorBoard logs."""
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from img2txt.model import storage
from img2txt.schemas import evaluation, training_run

# How tf.summary.create_file_writer names its files.
EVENT_FILES = 'events.out.tfevents.*'


def latest_export(model_dir):
    """The model dir's export with the highest step (``export/STEP``), or None if it has none.

    An export without its saved_model.pb does not count: an upload cut short
    (that file is copied last).
    """
    files = storage.list_files(FileSystems.join(model_dir, training_run.EXPORT_DIR))
    steps = [step for step in (training_run.export_step(path) for path in files
                               if path.partition('/')[2] == tf.saved_model.SAVED_MODEL_FILENAME_PB) if step is not None]
    return FileSystems.join(model_dir, training_run.export_relative(max(steps))) if steps else None


def scalar_curves(model_dir, tags):
    """{tag: {TRAIN_LOGS: [(step, value), ...], VALIDATION_LOGS: [...]}} of scalar tags, in one read of the event files.

    A resumed run appends event files; a step written twice keeps the later
    file's value. A split that never logged a tag has an empty list.
    """
    points = {tag: {training_run.TRAIN_LOGS: {}, training_run.VALIDATION_LOGS: {}} for tag in tags}
    for split in (training_run.TRAIN_LOGS, training_run.VALIDATION_LOGS):
        files = sorted(tf.io.gfile.glob(tf.io.gfile.join(model_dir, training_run.LOG_DIR, split, EVENT_FILES)))
        for record in (tf.data.TFRecordDataset(files) if files else ()):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag in points:
                    points[value.tag][split][event.step] = float(tf.make_ndarray(value.tensor))
    return {tag: {split: sorted(steps.items()) for split, steps in splits.items()} for tag, splits in points.items()}


def training_curves(model_dir):
    """(loss curves, val CIDEr-D curves, self-critical reward curves) of a model dir, as ``scalar_curves`` gives them.

    Raises:
      FileNotFoundError: neither split logged a loss.
    """
    curves = scalar_curves(model_dir, (training_run.LOSS, evaluation.CIDER_D, training_run.REWARD))
    if not any(curves[training_run.LOSS].values()):
        raise FileNotFoundError(f'{model_dir} has no {training_run.LOSS} in TensorBoard event files under '
                                f'{training_run.LOG_DIR}/{training_run.TRAIN_LOGS} or {training_run.LOG_DIR}/'
                                f'{training_run.VALIDATION_LOGS}')
    return curves[training_run.LOSS], curves[evaluation.CIDER_D], curves[training_run.REWARD]
