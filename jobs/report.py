"""``img2txt report``: one self-contained HTML page about a caption output, its evaluation and its training.

The page is a single file that fetches nothing: thumbnails are small JPEG
``data:`` URIs, the style sheet and the script are inline, and a Content
Security Policy allows the page no other source, so it opens offline (from a
bucket, a mail attachment, a CI artifact) and cannot call out. Every text that
comes from the files (URIs, captions, messages, run ids) is HTML-escaped.

Sections:

  gallery     photos with their best caption, its confidence and the top-k
              candidates with their probabilities, newest run first, at most
              ``max_images``; a text box and a minimum-confidence slider filter
              it in the page, starting from the URL's ``#q=cat&min=0.5``
  errors      failed files with their stage, error type and message
  runs        each run manifest: counts, model, images/s, start and end
  evaluation  metrics per subset and the images with the lowest CIDEr-D (``evaluation_dir``)
  training    training and validation loss per step as SVG (``model_dir``)
  attention   "where the model looked": when the model dir's latest export is
              an attention model, the first ``attention_images`` photos of the
              gallery with each word of their best caption under its attention
              heat map (as Xu et al. 2015 draw them); absent for Show and Tell
"""
import base64
import concurrent.futures
import datetime
import hashlib
import html
import io
import json
import math
import posixpath
import typing

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from img2txt.model import decoders, image_decoding, storage
from img2txt.model.captioner import DEFAULT_BATCH_SIZE, Candidate, Captioner, ExportInfo
from img2txt.model.input_spec import InputSpec
from img2txt.schemas import captioner, captions as schema, evaluation, manifest, training_run

DEFAULT_MAX_IMAGES = 500
DEFAULT_MAX_ERRORS = 500
# Square centre crops from the pipelines' decoder, so a thumbnail gets the same
# EXIF, colour-mode and decompression-bomb handling as captioning did; ~5 kB
# each as JPEG keeps a full gallery of 500 at a few MB.
THUMBNAIL_SPEC = InputSpec(size=160, resize=160)
THUMBNAIL_QUALITY = 75
# Photos read and decoded at once: reads from gs:// wait on the network.
THUMBNAIL_THREADS = 8
# Images of the evaluation listed by their CIDEr-D, worst first.
WORST_IMAGES = 20
# How tf.summary.create_file_writer names its files.
EVENT_FILES = 'events.out.tfevents.*'
# Photos of the gallery shown with their attention heat maps.
DEFAULT_ATTENTION_IMAGES = 6
# Side of each word's heat map tile (the encoder's crop scaled down): ~3 kB as
# JPEG, so six photos of ten-word captions add about 200 kB.
ATTENTION_TILE = 96
ATTENTION_QUALITY = 80
# The brightness a tile keeps where its word's attention is 0 (all of it where the attention peaks).
ATTENTION_FLOOR = 0.15

_GALLERY_COLUMNS = (schema.URI, schema.WIDTH, schema.HEIGHT, schema.CAPTION, schema.CONFIDENCE, schema.CANDIDATES,
                    schema.RUN_ID)
_ERROR_COLUMNS = (schema.URI, schema.STAGE, schema.ERROR_TYPE, schema.MESSAGE, schema.RUN_ID)


def register(subparsers):
    """Adds the ``report`` subcommand."""
    parser = subparsers.add_parser(
        'report', help='one self-contained HTML page of a caption output (gallery, errors, runs), '
                       'optionally with evaluation metrics and loss curves',
        description='Write a static HTML report that needs no network: a filterable gallery of captioned photos '
                    'with their candidates and confidence, the errors with their reasons, the run manifests, and '
                    'optionally evaluation metrics per subset and the training and validation loss curves. '
                    'Inputs and output may be local or gs://.')
    parser.add_argument('--captions', required=True, metavar='CAPTION_OUTPUT',
                        help='the --output folder of img2txt caption (holds captions/, errors/, runs/)')
    parser.add_argument('--evaluation', metavar='DIR', help='the --output folder of img2txt evaluate')
    parser.add_argument('--model-dir', metavar='DIR', help='the --model-dir of img2txt train (reads logs/)')
    parser.add_argument('--output', required=True, metavar='REPORT_HTML', help='the HTML file to write')
    parser.add_argument('--max-images', type=int, default=DEFAULT_MAX_IMAGES,
                        help='photos in the gallery, newest run first (default: %(default)s)')
    parser.add_argument('--max-errors', type=int, default=DEFAULT_MAX_ERRORS,
                        help='rows of the errors table, newest run first (default: %(default)s)')
    parser.add_argument('--attention-images', type=int, default=DEFAULT_ATTENTION_IMAGES, metavar='N',
                        help='when the --model-dir\'s latest export is an attention model: the first N photos of '
                             'the gallery, each word of their best caption over its attention heat map '
                             '(default: %(default)s; 0: none)')
    parser.set_defaults(run=run)


def run(args, beam_args):
    """Renders the report and writes it to ``--output``."""
    page = render(args.captions, args.evaluation, args.model_dir, args.max_images, args.max_errors,
                  attention_images=args.attention_images)
    with FileSystems.create(args.output, mime_type='text/html',
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(page.encode('utf-8'))
    print(f'wrote {args.output} ({len(page.encode("utf-8")) / 1e3:,.0f} kB)')
    return 0


def render(captions_dir, evaluation_dir=None, model_dir=None, max_images=DEFAULT_MAX_IMAGES,
           max_errors=DEFAULT_MAX_ERRORS, attention_images=DEFAULT_ATTENTION_IMAGES):
    """The report page as HTML text.

    Args:
      captions_dir: a caption job's output folder (local or gs://).
      evaluation_dir: an evaluate job's output folder, or None for no evaluation section.
      model_dir: a training model dir, or None for no loss curves.
      max_images: photos in the gallery at most, newest run first.
      max_errors: error rows at most, newest run first.
      attention_images: when ``model_dir``'s latest export is an attention
        model, the first this many readable photos of the gallery with their
        attention heat maps; 0 for none.

    Raises:
      FileNotFoundError: a folder lacks what its job writes.
      ValueError: a manifest or a limit is invalid.
    """
    if min(max_images, max_errors, attention_images) < 0:
        raise ValueError(f'--max-images, --max-errors and --attention-images must be at least 0, got {max_images}, '
                         f'{max_errors} and {attention_images}')
    manifests = read_manifests(captions_dir)
    captions_parts = _parts(captions_dir, schema.CAPTIONS_DIR)
    errors_parts = _parts(captions_dir, schema.ERRORS_DIR)
    if not (manifests or captions_parts or errors_parts):
        raise FileNotFoundError(f'{captions_dir} holds no caption runs (no {schema.manifest_path("*")} '
                                f'and no {schema.all_parts(schema.CAPTIONS_DIR)})')
    order = _newest_first(manifests, {*captions_parts, *errors_parts})
    photos, total_photos = _read_rows(captions_parts, order, _GALLERY_COLUMNS, max_images)
    failures, total_failures = _read_rows(errors_parts, order, _ERROR_COLUMNS, max_errors)
    sections = [_gallery(photos, total_photos), _errors(failures, total_failures),
                _runs([manifests[run_id] for run_id in order if run_id in manifests])]
    if evaluation_dir is not None:
        sections.append(_evaluation(evaluation_dir))
    if model_dir is not None:
        sections.append(_training(model_dir, *training_curves(model_dir)))
        export_dir = latest_export(model_dir) if attention_images else None
        if export_dir and decoders.get(ExportInfo.read(export_dir).decoder).has_attention_weights:
            sections.append(_attention(export_dir, photos, attention_images))
    return _page(captions_dir, f'{total_photos} captioned, {total_failures} failed, {len(order)} runs', sections)


def read_manifests(captions_dir):
    """{run id: manifest} of every run manifest under a caption output."""
    found = {}
    for metadata in FileSystems.match([FileSystems.join(captions_dir, schema.manifest_path('*'))])[0].metadata_list:
        try:
            document = manifest.loads(storage.read_bytes(metadata.path), 'caption', metadata.path)
        except ValueError as e:
            raise ValueError(f'{metadata.path}: {e}') from e
        found[document[manifest.RUN_ID]] = document
    return found


def _parts(captions_dir, kind):
    """{run id: [Parquet paths]} of every run's files of ``kind``, from their ``run=ID`` folders."""
    runs = {}
    for metadata in FileSystems.match([FileSystems.join(captions_dir, schema.all_parts(kind))])[0].metadata_list:
        runs.setdefault(schema.run_of_part(metadata.path), []).append(metadata.path)
    return {run_id: sorted(paths) for run_id, paths in runs.items()}


def _newest_first(manifests, run_ids):
    """Run ids by their manifest's start time, newest first; runs without a manifest (unfinished) last."""
    def started(run_id):
        return manifests[run_id][manifest.STARTED_AT] if run_id in manifests else ''
    return sorted({*manifests, *run_ids}, key=lambda run_id: (started(run_id), run_id), reverse=True)


def _read_rows(parts, order, columns, limit):
    """(the first ``limit`` rows in run ``order``, as dicts of ``columns``; the row count of all ``parts``).

    Each file's row count comes from its footer, so the total costs no rows
    read; rows are read only until the limit is reached.
    """
    rows, total = [], 0
    for run_id in order:
        for path in parts.get(run_id, ()):
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                part = pq.ParquetFile(f)
                total += part.metadata.num_rows
                if len(rows) < limit:
                    rows.extend(part.read(columns=list(columns)).to_pylist()[:limit - len(rows)])
    return rows, total


def thumbnail(uri):
    """A ``data:`` URI of a small JPEG of the image's centre, decoded by the pipelines' decoder."""
    return _jpeg_uri(image_decoding.decode(storage.read_bytes(uri), THUMBNAIL_SPEC), THUMBNAIL_QUALITY)


def _jpeg_uri(pixels, quality):
    """A ``data:`` URI of uint8 RGB ``pixels`` [H, W, 3] as JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'JPEG', quality=quality)
    return 'data:image/jpeg;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def _thumbnail_or_reason(uri):
    """(data URI, None), or (None, why not) when the photo moved or changed since it was captioned."""
    try:
        return thumbnail(uri), None
    except (OSError, image_decoding.ImageDecodeError) as e:
        return None, f'no thumbnail: {type(e).__name__}: {e}'


def latest_export(model_dir):
    """The model dir's export with the highest step (``export/STEP``), or None if it has none.

    An export without its saved_model.pb does not count: an upload cut short
    (that file is copied last).
    """
    files = storage.list_files(FileSystems.join(model_dir, training_run.EXPORT_DIR))
    steps = [step for step in (training_run.export_step(path) for path in files
                               if path.partition('/')[2] == tf.saved_model.SAVED_MODEL_FILENAME_PB) if step is not None]
    return FileSystems.join(model_dir, training_run.export_relative(max(steps))) if steps else None


def heat_tile(crop, weights, size=ATTENTION_TILE):
    """One word's heat map: ``crop`` (uint8 [S, S, 3]) scaled to ``size``, dimmed where ``weights`` ([H, W]) are low.

    The weights are scaled to their peak and upsampled bicubically to the tile,
    so the word's most attended spot keeps the image's brightness and a cell
    never looked at keeps ``ATTENTION_FLOOR`` of it.
    """
    image = _scaled(crop, size).astype(np.float32)
    peak = float(weights.max())
    grid = Image.fromarray(np.asarray(weights / peak if peak > 0 else weights, np.float32))
    level = np.clip(np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC)), 0, 1)
    return np.round(image * (ATTENTION_FLOOR + (1 - ATTENTION_FLOOR) * level)[..., None]).astype(np.uint8)


def _scaled(crop, size):
    """uint8 RGB ``crop`` [S, S, 3] resized to [size, size, 3]."""
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))


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


def line_chart(curves, label='loss per token by step'):
    """An inline SVG line chart of ``scalar_curves``' output: each split's values against the step."""
    width, height, left, right, top, bottom = 760, 300, 64, 16, 12, 40
    points = [point for curve in curves.values() for point in curve]
    x_low, x_high, x_ticks = _axis(min(s for s, _ in points), max(s for s, _ in points), integer=True)
    y_low, y_high, y_ticks = _axis(min(v for _, v in points), max(v for _, v in points))

    def x(step):
        return left + (step - x_low) / (x_high - x_low) * (width - left - right)

    def y(loss):
        return top + (1 - (loss - y_low) / (y_high - y_low)) * (height - top - bottom)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(label)}">']
    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in x_ticks:
        parts.append(f'<text class="tick" x="{x(tick):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                     f'{tick:,.0f}</text>')
    parts.append(f'<text class="tick" x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
                 'text-anchor="middle">step</text>')
    for split, curve in curves.items():
        if not curve:
            continue
        path = ' '.join(f'{x(s):.1f},{y(v):.1f}' for s, v in curve)
        parts.append(f'<polyline class="line {split}" points="{path}"/>')
        if split == training_run.VALIDATION_LOGS:  # Few and far between: mark each.
            parts.extend(f'<circle class="dot {split}" cx="{x(s):.1f}" cy="{y(v):.1f}" r="3"/>' for s, v in curve)
    parts.append('</svg>')
    return ''.join(parts)


def _axis(low, high, count=5, integer=False):
    """(start, end, ticks) of an axis over [low, high]: about ``count`` steps of 1, 2 or 5 times a power of ten.

    The axis starts and ends on a tick, so both ends are labelled.
    """
    if low == high:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(step, 1)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return first * step, last * step, [i * step for i in range(first, last + 1)]


def _e(value):
    """Any value as escaped HTML text (also safe inside a quoted attribute)."""
    return html.escape(str(value), quote=True)


def _number(value, digits=3):
    """A metric or count as text: floats rounded, anything else (e.g. METEOR_SKIPPED) as it is."""
    return f'{value:.{digits}f}' if isinstance(value, float) else _e(value)


def _probability(p):
    """A probability readable at any size: 0.912, 0.0034, 2.1e-05."""
    return f'{p:.3g}' if p >= 1e-3 else f'{p:.1e}'


def _time(iso):
    """A manifest's ISO time as 'YYYY-MM-DD HH:MM:SS' in UTC."""
    return datetime.datetime.fromisoformat(iso).astimezone(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')


def _table(header, rows, css_class=''):
    """An HTML table; ``header`` and cells are already HTML."""
    head = ''.join(f'<th>{cell}</th>' for cell in header)
    body = ''.join('<tr>' + ''.join(f'<td>{cell}</td>' for cell in row) + '</tr>' for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _gallery(photos, total):
    """The gallery section: a figure per photo, the filter controls and how many are shown."""
    with concurrent.futures.ThreadPoolExecutor(THUMBNAIL_THREADS) as pool:
        thumbnails = list(pool.map(_thumbnail_or_reason, [row[schema.URI] for row in photos]))
    figures = []
    for row, (source, reason) in zip(photos, thumbnails):
        candidates = row[schema.CANDIDATES]
        # What the text box searches: the file name and every candidate, best included.
        text = ' '.join([row[schema.URI], *(c[schema.CAPTION] for c in candidates)]).lower()
        image = (f'<img src="{source}" alt="{_e(row[schema.CAPTION])}" width="{THUMBNAIL_SPEC.size}" '
                 f'height="{THUMBNAIL_SPEC.size}">' if source else f'<div class="missing">{_e(reason)}</div>')
        items = ''.join(f'<li><span class="p">{_probability(math.exp(c[schema.LOG_PROB]))}</span> '
                        f'{_e(c[schema.CAPTION])}</li>' for c in candidates)
        figures.append(
            f'<figure class="photo" data-confidence="{row[schema.CONFIDENCE]:.6f}" data-text="{_e(text)}">{image}'
            f'<figcaption><p class="caption">{_e(row[schema.CAPTION])}</p>'
            f'<p class="meta"><span class="confidence">{row[schema.CONFIDENCE]:.3f}</span> confidence · '
            f'{row[schema.WIDTH]}×{row[schema.HEIGHT]} · run {_e(row[schema.RUN_ID])}</p>'
            f'<ol class="candidates">{items}</ol>'
            f'<p class="uri" title="{_e(row[schema.URI])}">{_e(posixpath.basename(row[schema.URI]))}</p>'
            '</figcaption></figure>')
    shown = f'{len(photos)} of {total} captioned images shown, newest run first'
    return ('<section id="gallery"><h2>Gallery</h2>'
            '<div class="filters"><label>Search <input id="q" type="search" placeholder="words in a caption or '
            'file name"></label><label>Minimum confidence <input id="min" type="range" min="0" max="1" '
            'step="any" value="0"> <output id="min-value">0.00</output></label></div>'
            f'<p class="note">{shown}; <span id="matching">{len(photos)}</span> match the filter.</p>'
            f'<div class="photos">{"".join(figures)}</div></section>')


def _errors(failures, total):
    """The errors section: one row per failed file with its reason."""
    rows = [(f'<span class="path">{_e(row[schema.URI])}</span>', _e(row[schema.STAGE]), _e(row[schema.ERROR_TYPE]),
             _e(row[schema.MESSAGE]), _e(row[schema.RUN_ID])) for row in failures]
    shown = f'{len(failures)} of {total} errors shown, newest run first.'
    table = _table(('file', 'stage', 'error', 'reason', 'run'), rows, 'errors') if rows else ''
    return f'<section id="errors"><h2>Errors</h2><p class="note">{shown}</p>{table}</section>'


def _runs(manifests):
    """The runs section: one row per run manifest, newest first."""
    rows = []
    for document in manifests:
        counts = document[manifest.COUNTS]
        seconds = (datetime.datetime.fromisoformat(document[manifest.FINISHED_AT])
                   - datetime.datetime.fromisoformat(document[manifest.STARTED_AT])).total_seconds()
        rows.append((_e(document[manifest.RUN_ID]), _e(_time(document[manifest.STARTED_AT])),
                     _e(_time(document[manifest.FINISHED_AT])), f'{seconds:.1f}',
                     *(f'{counts.get(name, 0)}' for name in manifest.CAPTION_COUNTS),
                     f'{document[manifest.IMAGES_PER_SECOND]:g}',
                     f'<span class="path">{_e(document[manifest.MODEL_ID])}</span>',
                     f'<span class="path">{_e(document[manifest.MODEL])}</span>'))
    header = ('run', 'started (UTC)', 'finished (UTC)', 'seconds', *manifest.CAPTION_COUNTS, 'images/s', 'model id',
              'model')
    table = _table(header, rows, 'runs') if rows else '<p>No run manifests.</p>'
    return f'<section id="runs"><h2>Runs</h2>{table}</section>'


def _evaluation(evaluation_dir):
    """The evaluation section: metrics per subset, and the images whose captions scored lowest."""
    metrics_path = FileSystems.join(evaluation_dir, evaluation.METRICS_FILE)
    images_path = FileSystems.join(evaluation_dir, evaluation.IMAGES_FILE)
    for path in (metrics_path, images_path):
        if not FileSystems.exists(path):
            raise FileNotFoundError(f'{evaluation_dir} is not an evaluation output: {path} is missing')
    metrics = json.loads(storage.read_bytes(metrics_path))
    subsets = metrics[evaluation.SUBSETS]
    names = [*evaluation.METRICS, *([evaluation.MENTIONS_RIGHT]
                                    if any(evaluation.MENTIONS_RIGHT in s for s in subsets.values()) else [])]
    # ALL first: the number a reader looks for; then the subsets by name.
    order = sorted(subsets, key=lambda name: (name != evaluation.ALL, name))
    rows = [(_e(name), _number(subsets[name][evaluation.IMAGES_COUNT]),
             *(_number(subsets[name].get(metric, '')) for metric in names)) for name in order]
    with FileSystems.open(images_path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        images = pq.read_table(f, columns=[evaluation.IMAGE_ID, evaluation.SUBSET, evaluation.CAPTION,
                                           evaluation.REFERENCES, evaluation.IMAGE_CIDER_D]).to_pylist()
    worst = sorted(images, key=lambda row: row[evaluation.IMAGE_CIDER_D])[:WORST_IMAGES]
    worst_rows = [(f'<span class="path">{_e(row[evaluation.IMAGE_ID])}</span>', _e(row[evaluation.SUBSET]),
                   _e(row[evaluation.CAPTION]), '<br>'.join(_e(r) for r in row[evaluation.REFERENCES]),
                   _number(row[evaluation.IMAGE_CIDER_D])) for row in worst]
    return ('<section id="evaluation"><h2>Evaluation</h2>'
            f'<p class="note">Model <span class="path">{_e(metrics[evaluation.MODEL_ID])}</span> on split '
            f'{_e(metrics[evaluation.SPLIT])}, {len(images)} images.</p>'
            + _table(('subset', evaluation.IMAGES_COUNT, *map(_e, names)), rows, 'metrics')
            + f'<h3>Lowest {evaluation.CIDER_D}</h3>'
            + _table(('image', 'subset', 'caption', 'references', evaluation.CIDER_D), worst_rows, 'worst')
            + '</section>')


def _training(model_dir, curves, cider, reward):
    """The training section: the loss chart, its legend and the last value of each curve; with caption
    validation (``cider``: its curves), the val CIDEr-D chart and its best step; for self-critical training
    (``reward``), the sampled captions' mean CIDEr-D."""
    names = {training_run.TRAIN_LOGS: 'training', training_run.VALIDATION_LOGS: 'validation'}
    legend = ''.join(
        f'<span class="key"><span class="swatch {split}"></span>{names[split]} loss: '
        + (f'{curve[-1][1]:.4f} at step {curve[-1][0]:,}' if curve else 'none logged') + '</span>'
        for split, curve in curves.items())
    quality = ''
    if cider[training_run.VALIDATION_LOGS]:
        best_step, best = max(cider[training_run.VALIDATION_LOGS], key=lambda point: (point[1], -point[0]))
        quality = (f'<p class="note" id="caption-quality">Val {evaluation.CIDER_D} of the beam-search captions '
                   f'(caption validation): best {best:.4f} at step {best_step:,}, the checkpoint kept in '
                   f'<span class="path">{training_run.BEST_DIR}/</span>.</p>'
                   + line_chart(cider, f'val {evaluation.CIDER_D} by step'))
    if reward[training_run.TRAIN_LOGS]:
        step, last = reward[training_run.TRAIN_LOGS][-1]
        quality += (f'<p class="note" id="reward">Self-critical training: mean {evaluation.CIDER_D} of the captions '
                    f'sampled from the train photos (the reward), {last:.4f} at step {step:,}.</p>'
                    + line_chart({training_run.TRAIN_LOGS: reward[training_run.TRAIN_LOGS]},
                                 f'sampled captions\' {evaluation.CIDER_D} by step'))
    return (f'<section id="training"><h2>Training</h2><p class="note">Loss per token, from the TensorBoard logs of '
            f'<span class="path">{_e(model_dir)}</span>.</p><p class="legend">{legend}</p>{line_chart(curves)}'
            f'{quality}</section>')


def _attention(export_dir, photos, count):
    """The heat map section: the first ``count`` readable ``photos`` captioned by the attention export, word by word."""
    model = Captioner.load(export_dir, batch_size=min(count, DEFAULT_BATCH_SIZE))
    chosen, crops, unread = [], [], 0
    for row in photos:
        if len(chosen) == count:
            break
        try:
            crops.append(image_decoding.decode(storage.read_bytes(row[schema.URI]), model.input_spec,
                                               model.max_pixels))
            chosen.append(row)
        except (OSError, image_decoding.ImageDecodeError):
            unread += 1
    looks = [Look(row[schema.URI], crop, *attended)
             for row, crop, attended in zip(chosen, crops, model.attend(np.stack(crops)) if crops else ())]
    grid = model.info.config[captioner.CONFIG_ENCODER][manifest.ENCODER_SPATIAL_SHAPE][:2]
    return attention_section(looks, unread, model.model_id, export_dir, grid)


class Look(typing.NamedTuple):
    """One photo of the heat map section: its crop, best caption and the weights of each word."""

    uri: str
    # uint8 [S, S, 3], the encoder's input crop.
    crop: np.ndarray
    candidate: Candidate
    # float [candidate.words, H, W], as ``Captioner.attend`` gives them.
    weights: np.ndarray


def attention_section(looks, unread, model_id, export_dir, grid):
    """The heat map section's HTML: each ``Look``'s words over their heat tiles (``heat_tile``).

    ``unread``: photos left out as unreadable; ``grid``: the encoder's (H, W).
    """
    figures, unknown = [], 0
    for uri, crop, candidate, weights in looks:
        words = candidate.caption.split()
        if len(words) != len(weights):  # an unknown word has a row but no place in the text
            unknown += 1
            continue
        tiles = ''.join(f'<figure class="word"><img src="{_jpeg_uri(heat_tile(crop, cells), ATTENTION_QUALITY)}" '
                        f'alt="where the model looked for {_e(word)}" width="{ATTENTION_TILE}" '
                        f'height="{ATTENTION_TILE}"><figcaption>{_e(word)}</figcaption></figure>'
                        for word, cells in zip(words, weights))
        source = _jpeg_uri(_scaled(crop, ATTENTION_TILE), ATTENTION_QUALITY)
        figures.append(
            f'<figure class="look"><div class="tiles"><img class="crop" src="{source}" '
            f'alt="{_e(candidate.caption)}" width="{ATTENTION_TILE}" height="{ATTENTION_TILE}">{tiles}</div>'
            f'<figcaption><p class="caption">{_e(candidate.caption)}</p>'
            f'<p class="uri" title="{_e(uri)}">{_e(posixpath.basename(uri))}</p>'
            '</figcaption></figure>')
    height, width = grid
    left_out = ''.join(f' {n} left out: {why}.' for n, why in (
        (unread, 'could not be read'),
        (unknown, 'the caption has an unknown word, whose place in the text the export does not give')) if n)
    return ('<section id="attention"><h2>Where the model looked</h2>'
            f'<p class="note">The first {len(figures)} readable photos of the gallery, captioned by '
            f'<span class="path">{_e(model_id)}</span> (<span class="path">{_e(export_dir)}</span>): '
            f'each word of the best caption over its attention on the encoder\'s {height}×{width} grid, '
            f'upsampled; bright where the model looked, dark where it did not.{left_out}</p>'
            f'<div class="looks">{"".join(figures)}</div></section>')


_STYLE = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5d6675; --line: #dde1e8; --accent: #2a62c9; --val: #d9731a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1400px; padding: 16px 24px 48px; font: 14px/1.45 system-ui, sans-serif;
       color: var(--ink); background: #f6f7f9; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 18px; margin: 28px 0 8px; } h3 { font-size: 15px; }
.note, .meta, header p { color: var(--muted); margin: 4px 0 10px; }
.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
[hidden] { display: none !important; }
.filters { display: flex; flex-wrap: wrap; gap: 24px; align-items: center; }
.filters input[type=search] { width: 280px; padding: 4px 8px; font: inherit; }
.photos { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.photo { margin: 0; padding: 8px; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.photo img, .missing { display: block; width: 160px; height: 160px; margin: 0 auto 6px; border-radius: 4px; }
.missing { padding: 8px; background: #eceef2; color: var(--muted); font-size: 12px; overflow: hidden; }
.caption { font-weight: 600; margin: 0 0 2px; }
.meta { font-size: 12px; margin: 0 0 4px; }
.confidence { color: var(--accent); font-weight: 600; }
.candidates { margin: 0 0 4px; padding-left: 20px; font-size: 12px; }
.candidates .p { display: inline-block; min-width: 44px; color: var(--muted); font-variant-numeric: tabular-nums; }
.uri { margin: 0; font-size: 11px; color: var(--muted); overflow: hidden; text-overflow: ellipsis;
       white-space: nowrap; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
.chart { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
.chart .grid { stroke: var(--line); } .chart .tick { fill: var(--muted); font-size: 11px; }
.chart .line { fill: none; stroke-width: 2; } .chart .line.train { stroke: var(--accent); }
.chart .line.val { stroke: var(--val); } .chart .dot.val { fill: var(--val); }
.legend { display: flex; gap: 24px; } .swatch { display: inline-block; width: 14px; height: 3px; margin-right: 6px;
          vertical-align: middle; } .swatch.train { background: var(--accent); } .swatch.val { background: var(--val); }
.looks { display: flex; flex-direction: column; gap: 12px; }
.look { margin: 0; padding: 8px; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.tiles img { display: block; border-radius: 3px; } .tiles .crop { margin-right: 10px; }
.word { margin: 0; } .word figcaption { text-align: center; font-size: 12px; }
.look > figcaption .caption { margin: 6px 0 0; }
"""

# Filters the gallery in the page; the URL's #q=words&min=0.5 sets the first
# filter, so a link can point at a filtered view.
_SCRIPT = """
(function () {
  var q = document.getElementById('q'), min = document.getElementById('min');
  var shownValue = document.getElementById('min-value'), matching = document.getElementById('matching');
  var photos = document.querySelectorAll('#gallery .photo');
  function apply() {
    var words = q.value.toLowerCase().split(/\\s+/).filter(Boolean), least = parseFloat(min.value) || 0, count = 0;
    photos.forEach(function (photo) {
      var text = photo.dataset.text;
      var hide = parseFloat(photo.dataset.confidence) < least ||
          words.some(function (word) { return text.indexOf(word) < 0; });
      photo.hidden = hide;
      if (!hide) count++;
    });
    shownValue.textContent = least.toFixed(2);
    matching.textContent = count;
  }
  var initial = new URLSearchParams(location.hash.slice(1));
  if (initial.has('q')) q.value = initial.get('q');
  if (initial.has('min')) min.value = initial.get('min');
  q.addEventListener('input', apply);
  min.addEventListener('input', apply);
  apply();
})();
"""


def _csp_hash(text):
    """The Content Security Policy source that allows exactly this inline style or script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode('utf-8')).digest()).decode('ascii') + "'"


def _page(captions_dir, summary, sections):
    """The whole document: the policy, the inline style and script, the sections."""
    # Only the inline style and script below, and data: images, may load: no
    # request leaves the page, and markup that slipped past escaping could not run.
    policy = (f"default-src 'none'; img-src data:; style-src {_csp_hash(_STYLE)}; "
              f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'")
    generated = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>img2txt report: {_e(captions_dir)}</title><style>{_STYLE}</style></head><body>'
            f'<header><h1>img2txt report</h1><p><span class="path">{_e(captions_dir)}</span> · {_e(summary)} · '
            f'generated {generated}</p></header>'
            + ''.join(sections) + f'<script>{_SCRIPT}</script></body></html>\n')
