"""The page's sections: gallery, errors, runs, evaluation, training and attention, each as HTML."""
import datetime
import json
import math
import posixpath
import typing

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from img2txt.jobs.report.chart import line_chart
from img2txt.jobs.report.images import (ATTENTION_QUALITY, ATTENTION_TILE, THUMBNAIL_SPEC, heat_tile, jpeg_uri, scaled,
                                        thumbnails)
from img2txt.jobs.report.page import escape as _e
from img2txt.model import storage
from img2txt.model.serving import image_decoding
from img2txt.model.serving.captioner import DEFAULT_BATCH_SIZE, Candidate, Captioner
from img2txt.schemas import captioner, captions as schema, evaluation, manifest, training_run

# Images of the evaluation listed by their CIDEr-D, worst first.
WORST_IMAGES = 20


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


def gallery_section(photos, total):
    """The gallery section: a figure per photo, the filter controls and how many are shown."""
    pictures = thumbnails([row[schema.URI] for row in photos])
    figures = []
    for row, (source, reason) in zip(photos, pictures):
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


def errors_section(failures, total):
    """The errors section: one row per failed file with its reason."""
    rows = [(f'<span class="path">{_e(row[schema.URI])}</span>', _e(row[schema.STAGE]), _e(row[schema.ERROR_TYPE]),
             _e(row[schema.MESSAGE]), _e(row[schema.RUN_ID])) for row in failures]
    shown = f'{len(failures)} of {total} errors shown, newest run first.'
    table = _table(('file', 'stage', 'error', 'reason', 'run'), rows, 'errors') if rows else ''
    return f'<section id="errors"><h2>Errors</h2><p class="note">{shown}</p>{table}</section>'


def runs_section(manifests):
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


def evaluation_section(evaluation_dir):
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


def training_section(model_dir, curves, cider, reward):
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


def export_attention_section(export_dir, photos, count):
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
        tiles = ''.join(f'<figure class="word"><img src="{jpeg_uri(heat_tile(crop, cells), ATTENTION_QUALITY)}" '
                        f'alt="where the model looked for {_e(word)}" width="{ATTENTION_TILE}" '
                        f'height="{ATTENTION_TILE}"><figcaption>{_e(word)}</figcaption></figure>'
                        for word, cells in zip(words, weights))
        source = jpeg_uri(scaled(crop, ATTENTION_TILE), ATTENTION_QUALITY)
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
