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
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from img2txt.jobs.report.chart import line_chart
from img2txt.jobs.report.images import (ATTENTION_FLOOR, ATTENTION_QUALITY, ATTENTION_TILE, THUMBNAIL_QUALITY,
                                        THUMBNAIL_SPEC, THUMBNAIL_THREADS, heat_tile, thumbnail)
from img2txt.jobs.report.outputs import newest_first, read_manifests, read_rows, run_parts
from img2txt.jobs.report.page import document
from img2txt.jobs.report.sections import (WORST_IMAGES, Look, attention_section, errors_section, evaluation_section,
                                          export_attention_section, gallery_section, runs_section, training_section)
from img2txt.jobs.report.training import EVENT_FILES, latest_export, scalar_curves, training_curves
from img2txt.model.networks import decoders
from img2txt.model.serving.captioner import ExportInfo
from img2txt.schemas import captions as schema

# The job, and the names of its modules that callers reach as ``report.NAME``.
__all__ = ['ATTENTION_FLOOR', 'ATTENTION_QUALITY', 'ATTENTION_TILE', 'DEFAULT_ATTENTION_IMAGES', 'DEFAULT_MAX_ERRORS',
           'DEFAULT_MAX_IMAGES', 'EVENT_FILES', 'THUMBNAIL_QUALITY', 'THUMBNAIL_SPEC', 'THUMBNAIL_THREADS',
           'WORST_IMAGES', 'Look', 'attention_section', 'heat_tile', 'latest_export', 'line_chart', 'read_manifests',
           'register', 'render', 'run', 'scalar_curves', 'thumbnail', 'training_curves']

DEFAULT_MAX_IMAGES = 500
DEFAULT_MAX_ERRORS = 500
# Photos of the gallery shown with their attention heat maps.
DEFAULT_ATTENTION_IMAGES = 6

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
    captions_parts = run_parts(captions_dir, schema.CAPTIONS_DIR)
    errors_parts = run_parts(captions_dir, schema.ERRORS_DIR)
    if not (manifests or captions_parts or errors_parts):
        raise FileNotFoundError(f'{captions_dir} holds no caption runs (no {schema.manifest_path("*")} '
                                f'and no {schema.all_parts(schema.CAPTIONS_DIR)})')
    order = newest_first(manifests, {*captions_parts, *errors_parts})
    photos, total_photos = read_rows(captions_parts, order, _GALLERY_COLUMNS, max_images)
    failures, total_failures = read_rows(errors_parts, order, _ERROR_COLUMNS, max_errors)
    sections = [gallery_section(photos, total_photos), errors_section(failures, total_failures),
                runs_section([manifests[run_id] for run_id in order if run_id in manifests])]
    if evaluation_dir is not None:
        sections.append(evaluation_section(evaluation_dir))
    if model_dir is not None:
        sections.append(training_section(model_dir, *training_curves(model_dir)))
        export_dir = latest_export(model_dir) if attention_images else None
        if export_dir and decoders.get(ExportInfo.read(export_dir).decoder).has_attention_weights:
            sections.append(export_attention_section(export_dir, photos, attention_images))
    return document(captions_dir, f'{total_photos} captioned, {total_failures} failed, {len(order)} runs', sections)
