"""Caption: photo collections (local or gs://) → Parquet rows of captions, with an exported captioner.

::

  --input globs, --input-list URIs ─► Match (metadata only) ─► ByUri ◄─ [--incremental] earlier runs' keys
       ─► SkipDone ─► DecodeImages (read, sha256, decode; thread pool) ─► [--incremental] ReuseByHash
       ─► Caption (RunInference, fixed batches) ─► captions/run=ID/        (schemas.captions)
  failures of every stage ─────────────────────────────────────────────► errors/run=ID/
  counts from the data, once both are written ─────────────────────────► runs/ID.json

Nothing is lost: every file the inputs name is counted once as matched and
ends as exactly one of skipped (an earlier run under the same output did it
with the same model, and its URI, size and modification time are unchanged),
captioned (inferred, or reused from an earlier row with the same SHA-256 and
model: a copied or renamed photo) or failed (an error row saying why). The
manifest's counts are computed from the rows themselves. Files matched by two
globs are captioned once.

Earlier runs are read back as Parquet key columns and joined by key
(CoGroupByKey), never collected in one worker, so an incremental run over
millions of captioned photos costs a shuffle of their keys, not memory.
"""
import dataclasses
import datetime
import json
import logging
import sys
import time
import typing

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

import img2txt
from img2txt.model import captioner as captioner_lib, storage
from img2txt.pipelines import beam_options, image_decoding
from img2txt.pipelines.model_handlers import CaptionerModelHandler
from img2txt.schemas import captions as schema, errors, manifest

_log = logging.getLogger(__name__)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@dataclasses.dataclass
class CaptionConfig:
    """Options of the caption job; each field is the flag of the same name."""

    model: str = dataclasses.field(metadata={
        'help': 'exported captioner: MODEL_DIR/export/STEP of img2txt train, local or gs://'})
    output: str = dataclasses.field(metadata={
        'help': 'output folder, local or gs://: captions/, errors/ and runs/ accumulate there run after run'})
    input: list[str] = dataclasses.field(default_factory=list, metadata={
        'help': 'files to caption: a path or glob, local or gs:// ("**" matches across folders)',
        'metavar': 'GLOB'})
    input_list: str | None = dataclasses.field(default=None, metadata={
        'help': 'a text file (local or gs://) of image URIs, one per line'})
    incremental: bool = dataclasses.field(default=False, metadata={
        'help': "skip files an earlier run under --output already captioned or failed with this model (same URI, "
                "size and modification time), and reuse the caption of a photo with the same bytes"})
    top_k: int | None = dataclasses.field(default=None, metadata={
        'help': "candidate captions kept per image; default: the model's beam size"})
    batch_size: int = dataclasses.field(default=captioner_lib.DEFAULT_BATCH_SIZE, metadata={
        'help': 'images per captioner call; every call has this shape (the last is padded), so captions do not '
                'depend on how the runner batches'})
    max_pixels: int | None = dataclasses.field(default=None, metadata={
        'help': "refuse images declaring more pixels than this (decompression bombs); default: the export's limit"})
    run_id: str | None = dataclasses.field(default=None, metadata={
        'help': 'name of this run\'s partition (captions/run=RUN_ID/); default: the UTC start time'})

    def __post_init__(self):
        if not self.input and not self.input_list:
            raise ValueError('nothing to caption: give --input GLOB (repeatable) or --input-list FILE')
        if self.batch_size < 1:
            raise ValueError(f'--batch-size must be at least 1, got {self.batch_size}')
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f'--top-k must be at least 1, got {self.top_k}')
        if self.run_id is not None and (not self.run_id or any(c in self.run_id for c in '/\\=*?[] ')):
            raise ValueError(f'--run-id {self.run_id!r} must be a non-empty name without / \\ = * ? [ ] or spaces')


class File(typing.NamedTuple):
    """A matched file: what the listing says, before any byte is read."""

    uri: str
    size: int
    # Modification time in whole microseconds since the epoch: exact to compare, as Parquet stores it.
    modified_us: int


class RunContext(typing.NamedTuple):
    """What every row of a run carries besides its own data."""

    model_id: str
    encoder_id: str
    run_id: str


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _time(microseconds):
    return _EPOCH + datetime.timedelta(microseconds=microseconds)


def _microseconds(moment):
    return (moment - _EPOCH) // datetime.timedelta(microseconds=1)


def error_row(context, stage, uri, error_type, message, file=None):
    """One ``schemas.captions.ERRORS_SCHEMA`` row."""
    if stage not in schema.STAGES:
        raise ValueError(f'unknown stage {stage!r}; expected one of {schema.STAGES}')
    return {
        schema.URI: uri,
        schema.SIZE_BYTES: file.size if file else None,
        schema.MODIFIED_AT: _time(file.modified_us) if file else None,
        schema.STAGE: stage, schema.ERROR_TYPE: error_type, schema.MESSAGE: message,
        schema.MODEL_ID: context.model_id, schema.RUN_ID: context.run_id, schema.FAILED_AT: _now(),
    }


def caption_row(context, file, sha256, width, height, candidates, reused):
    """One ``schemas.captions.CAPTIONS_SCHEMA`` row; ``candidates`` are ``(caption, log_prob, words)``, best first."""
    best = candidates[0]
    return {
        schema.URI: file.uri, schema.SIZE_BYTES: file.size, schema.MODIFIED_AT: _time(file.modified_us),
        schema.SHA256: sha256, schema.WIDTH: width, schema.HEIGHT: height,
        schema.CAPTION: best.caption, schema.LOG_PROB: best.log_prob,
        schema.CONFIDENCE: schema.confidence(best.log_prob, best.words),
        schema.CANDIDATES: [{schema.CAPTION: c.caption, schema.LOG_PROB: c.log_prob} for c in candidates],
        schema.REUSED: reused, schema.MODEL_ID: context.model_id, schema.ENCODER_ID: context.encoder_id,
        schema.RUN_ID: context.run_id, schema.CAPTIONED_AT: _now(),
    }


class _Match(beam.DoFn):
    """A glob, or (``listed``) one URI of an input list → its files with their listed size and time.

    A listed URI that does not exist, and a glob whose listing fails, become
    stage ``match`` error rows.
    """

    ERRORS = 'errors'

    def __init__(self, context, listed, progress):
        self._context = context
        self._listed = listed
        self._progress = progress
        # Named inputs that are not there count as matched (and failed): matched = skipped + captioned + failed.
        self._missing = beam.metrics.Metrics.counter('img2txt_caption', manifest.MATCHED)

    def process(self, pattern):
        # Returns a list: Beam warns about generators that also return.
        pattern = pattern.strip()
        if not pattern:
            return []  # a blank line of an input list
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # storage errors, permissions: the input is named, the run goes on
            self._missing.inc()
            return [beam.pvalue.TaggedOutput(self.ERRORS, error_row(
                self._context, 'match', pattern, type(e).__name__, str(e) or repr(e)))]
        if not found:
            what = 'listed in --input-list but not found' if self._listed else 'matches no files'
            self._missing.inc()
            return [beam.pvalue.TaggedOutput(self.ERRORS, error_row(
                self._context, 'match', pattern, 'FileNotFoundError', f'{pattern} {what}'))]
        if self._progress and not self._listed:
            print(f'caption: {pattern} matches {len(found)} files', file=sys.stderr, flush=True)
        return [File(m.path, m.size_in_bytes, round(m.last_updated_in_seconds * 1e6)) for m in found]


class _SkipDone(beam.DoFn):
    """(uri, {files, done}) → the file once, or to ``skipped`` when an earlier run did it unchanged."""

    SKIPPED = 'skipped'

    def __init__(self):
        self._matched = beam.metrics.Metrics.counter('img2txt_caption', manifest.MATCHED)

    def process(self, element):
        _, grouped = element
        files = grouped['files']
        if not files:
            return []  # only in earlier runs: gone from the inputs, nothing to do
        self._matched.inc()
        # Two globs may match the same file; they list the same metadata.
        file = files[0]
        if (file.size, file.modified_us) in set(grouped['done']):
            return [beam.pvalue.TaggedOutput(self.SKIPPED, file)]
        return [file]


class _ReuseByHash(beam.DoFn):
    """(sha256, {new, old}) → new images to caption, or rows reusing an earlier caption of the same bytes."""

    REUSED = 'reused'

    def __init__(self, context):
        self._context = context

    def process(self, element):
        sha256, grouped = element
        if not grouped['old']:
            return list(grouped['new'])
        # Any earlier row of these bytes would do; the smallest URI makes reruns give the same one.
        old = min(grouped['old'], key=lambda row: row[schema.URI])
        candidates = [captioner_lib.Candidate(c[schema.CAPTION], c[schema.LOG_PROB], len(c[schema.CAPTION].split()))
                      for c in old[schema.CANDIDATES]]
        return [beam.pvalue.TaggedOutput(self.REUSED, caption_row(
            self._context, file, sha256, image.width, image.height, candidates, reused=True))
            for file, image in grouped['new']]


class _Progress(beam.DoFn):
    """Prints how many images are done and how fast, at most every ``every_s`` seconds (local runs)."""

    def __init__(self, every_s=5.0):
        self._every_s = every_s

    def setup(self):
        self._started = self._last = time.monotonic()
        self._done = 0

    def process(self, element):
        self._done += 1
        now = time.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            print(f'caption: {self._done} images done, {self._done / (now - self._started):.1f} images/s',
                  file=sys.stderr, flush=True)


@dataclasses.dataclass
class CaptionOutputs:
    """The PCollections ``build`` leaves for tests and callers to inspect."""

    captions: beam.PCollection   # caption rows (schemas.captions.CAPTIONS_SCHEMA)
    errors: beam.PCollection     # error rows (schemas.captions.ERRORS_SCHEMA)
    counts: beam.PCollection     # one dict: manifest.CAPTION_COUNTS


def _history(pipeline, label, output, kind, columns, model_id, look):
    """Earlier runs' rows of ``kind`` for ``model_id`` (only ``columns``); nothing when ``look`` finds none.

    Without ``look`` (a dry run, which must not touch storage) the read is
    built unchecked.
    """
    pattern = FileSystems.join(output, schema.all_parts(kind))
    if look and not FileSystems.match([pattern], limits=[1])[0].metadata_list:
        return pipeline | f'No{label}' >> beam.Create([])
    return (pipeline
            | f'Read{label}' >> beam.io.ReadFromParquet(pattern, columns=list(columns), validate=look)
            | f'{label}OfModel' >> beam.Filter(lambda row: row[schema.MODEL_ID] == model_id))


def build(pipeline, config, context, input_spec, progress=False, look=True):
    """Adds the caption steps to ``pipeline``.

    Args:
      pipeline: a ``beam.Pipeline``.
      config: a ``CaptionConfig`` whose ``max_pixels`` is set (``run_config`` takes the export's).
      context: the run's ``RunContext`` (the model's ids and the run id).
      input_spec: the captioner's ``InputSpec`` (from the export's config).
      progress: print progress lines on stderr (local runs).
      look: whether the output may be looked at now for earlier runs (not in a dry run).

    Returns:
      ``CaptionOutputs``; the rows are also written under ``config.output``.
    """
    if config.max_pixels is None:
        raise ValueError('build needs config.max_pixels: the limit of the export (ExportInfo.max_pixels)')
    globs = pipeline | 'Globs' >> beam.Create(sorted(set(config.input)))
    matched = globs | 'MatchGlobs' >> beam.ParDo(_Match(context, False, progress)).with_outputs(
        _Match.ERRORS, main='files')
    match_parts, match_errors = [matched.files], [matched[_Match.ERRORS]]
    if config.input_list:
        listed = (pipeline
                  | 'ReadInputList' >> beam.io.ReadFromText(config.input_list)
                  | 'MatchListed' >> beam.ParDo(_Match(context, True, progress)).with_outputs(
                      _Match.ERRORS, main='files'))
        match_parts.append(listed.files)
        match_errors.append(listed[_Match.ERRORS])
    files = match_parts | 'AllFiles' >> beam.Flatten()

    if config.incremental:
        done = (_history(pipeline, 'CaptionKeys', config.output, schema.CAPTIONS_DIR, schema.SKIP_COLUMNS,
                         context.model_id, look),
                _history(pipeline, 'ErrorKeys', config.output, schema.ERRORS_DIR, schema.SKIP_COLUMNS,
                         context.model_id, look)) | 'DoneKeys' >> beam.Flatten()
    else:
        done = pipeline | 'NothingDone' >> beam.Create([])
    done_by_uri = done | 'DoneByUri' >> beam.Map(
        lambda row: (row[schema.URI], (row[schema.SIZE_BYTES],
                                       _microseconds(row[schema.MODIFIED_AT]) if row[schema.MODIFIED_AT] else None)))
    # The grouping also spreads the files of one glob over the workers.
    todo = ({'files': files | 'ByUri' >> beam.Map(lambda file: (file.uri, file)), 'done': done_by_uri}
            | 'GroupByUri' >> beam.CoGroupByKey()
            | 'SkipDone' >> beam.ParDo(_SkipDone()).with_outputs(_SkipDone.SKIPPED, main='files'))

    decoded = (todo.files
               | 'Paths' >> beam.Map(lambda file: (file, file.uri))
               | 'DecodeImages' >> image_decoding.DecodeImages(input_spec, config.max_pixels))
    decode_errors = decoded.errors | 'DecodeErrorRows' >> beam.MapTuple(
        lambda file, record: error_row(context, record[errors.STAGE], file.uri, record[errors.ERROR_TYPE],
                                       record[errors.MESSAGE], file))

    images = decoded.images
    reused_parts = []
    if config.incremental:
        old = _history(pipeline, 'CaptionsByHash', config.output, schema.CAPTIONS_DIR, schema.REUSE_COLUMNS,
                       context.model_id, look)
        reuse = ({'new': images | 'ByHash' >> beam.MapTuple(lambda file, image: (image.sha256, (file, image))),
                  'old': old | 'OldByHash' >> beam.Map(lambda row: (row[schema.SHA256], row))}
                 | 'GroupByHash' >> beam.CoGroupByKey()
                 | 'ReuseByHash' >> beam.ParDo(_ReuseByHash(context)).with_outputs(_ReuseByHash.REUSED, main='new'))
        images = reuse.new
        reused_parts.append(reuse[_ReuseByHash.REUSED])

    handler = KeyedModelHandler(CaptionerModelHandler(config.model, config.batch_size, config.top_k))
    inferred, infer_failed = (images
                              | 'Key' >> beam.MapTuple(
                                  lambda file, image: ((file, image.sha256, image.width, image.height), image))
                              | 'Caption' >> RunInference(handler).with_exception_handling())
    rows = inferred | 'CaptionRows' >> beam.ParDo(_CaptionRows(context)).with_outputs(
        _CaptionRows.ERRORS, main='rows')
    infer_errors = infer_failed.failed_inferences | 'InferErrorRows' >> beam.FlatMap(
        lambda failure: [error_row(context, 'infer', key[0].uri, type(failure[1]).__name__, str(failure[1]), key[0])
                         for key, _ in failure[0]])

    caption_rows = [rows.rows] + reused_parts | 'AllCaptions' >> beam.Flatten()
    error_rows = ((*match_errors, decode_errors, infer_errors, rows[_CaptionRows.ERRORS])
                  | 'AllErrors' >> beam.Flatten())
    if progress:
        _ = ((caption_rows, error_rows) | 'Done' >> beam.Flatten()
             | 'Progress' >> beam.ParDo(_Progress()))

    counts = ([caption_rows | 'CountCaptioned' >> beam.ParDo(_Count(manifest.CAPTIONED)),
               caption_rows | 'CountReused' >> beam.ParDo(_Count(manifest.REUSED, lambda row: int(row[schema.REUSED]))),
               error_rows | 'CountFailed' >> beam.ParDo(_Count(manifest.FAILED)),
               todo[_SkipDone.SKIPPED] | 'CountSkipped' >> beam.ParDo(_Count(manifest.SKIPPED))]
              | 'FlattenCounts' >> beam.Flatten()
              | 'SumCounts' >> beam.CombinePerKey(sum)
              | 'CountsToDict' >> beam.combiners.ToDict()
              | 'AllCounts' >> beam.Map(_complete_counts))
    return CaptionOutputs(captions=caption_rows, errors=error_rows, counts=counts)


class _Count(beam.DoFn):
    """Element → (name, n) for the manifest's counts, and the same n on the Beam counter ``img2txt_caption/name``.

    The counters show while the job runs (Dataflow's job page, the metrics of
    a local run); the manifest's figures come from the pairs, from the data.
    """

    def __init__(self, name, value=None):
        self._name = name
        self._value = value
        self._counter = beam.metrics.Metrics.counter('img2txt_caption', name)

    def process(self, element):
        n = 1 if self._value is None else self._value(element)
        self._counter.inc(n)
        return [(self._name, n)]


def _complete_counts(counts):
    counts = {name: counts.get(name, 0) for name in manifest.CAPTION_COUNTS}
    counts[manifest.MATCHED] = counts[manifest.SKIPPED] + counts[manifest.CAPTIONED] + counts[manifest.FAILED]
    return counts


class _CaptionRows(beam.DoFn):
    """RunInference's ((file, sha256, width, height), PredictionResult) → a caption row."""

    ERRORS = 'errors'

    def __init__(self, context):
        self._context = context

    def process(self, element):
        (file, sha256, width, height), result = element
        if not result.inference:
            return [beam.pvalue.TaggedOutput(self.ERRORS, error_row(
                self._context, 'infer', file.uri, 'NoCaptionError', 'the model gave no caption', file))]
        return [caption_row(self._context, file, sha256, width, height, result.inference, reused=False)]


def _write_rows(rows, label, output, kind, run_id, arrow_schema):
    """Writes a run's rows as Parquet under ``output/kind/run=RUN_ID/``; returns the written file names."""
    prefix = FileSystems.join(output, schema.partition(kind, run_id), schema.PART_PREFIX)
    return rows | label >> beam.io.WriteToParquet(prefix, arrow_schema, file_name_suffix=schema.PARQUET_SUFFIX)


def _manifest(counts, captions_files, errors_files, config, context, started, options):
    """The run manifest (``schemas.manifest``, job 'caption'), made once the rows are written."""
    finished = _now()
    seconds = max((finished - started).total_seconds(), 1e-9)
    done = counts[manifest.CAPTIONED] - counts[manifest.REUSED] + counts[manifest.FAILED]
    return {
        manifest.FORMAT: manifest.FORMAT_VERSION,
        manifest.JOB: 'caption',
        manifest.VERSION: img2txt.__version__,
        manifest.INPUTS: {'input': list(config.input), 'input_list': config.input_list},
        manifest.OPTIONS: {**dataclasses.asdict(config), 'beam': options},
        manifest.COUNTS: counts,
        manifest.STARTED_AT: started.isoformat(),
        manifest.FINISHED_AT: finished.isoformat(),
        manifest.MODEL: config.model,
        manifest.MODEL_ID: context.model_id,
        manifest.RUN_ENCODER_ID: context.encoder_id,
        manifest.RUN_ID: context.run_id,
        manifest.IMAGES_PER_SECOND: round(done / seconds, 3),
        manifest.OUTPUTS: {schema.CAPTIONS_DIR: sorted(captions_files), schema.ERRORS_DIR: sorted(errors_files)},
    }


def _check_inputs(config):
    for pattern in config.input:
        if not FileSystems.match([pattern], limits=[1])[0].metadata_list:
            raise FileNotFoundError(f'--input {pattern} matches no files')
    if config.input_list and not FileSystems.exists(config.input_list):
        raise FileNotFoundError(f'--input-list {config.input_list} does not exist')


def run_config(config, beam_args=()):
    """Runs the caption pipeline; returns the run manifest (None when the job was only built or submitted).

    A Dataflow dry run (``--dry_run``) only builds and validates the job graph;
    a Dataflow Flex Template launch (``--template_location`` set, or the
    launcher's ``FLEX_TEMPLATE_*`` environment) submits it without waiting:
    the job writes its own manifest when it ends.
    """
    started = _now()
    run_id = config.run_id or started.strftime('%Y%m%dT%H%M%S.') + f'{started.microsecond // 1000:03d}Z'
    config = dataclasses.replace(config, run_id=run_id)
    options = beam_options.pipeline_options(list(beam_args))
    info = captioner_lib.ExportInfo.read(config.model)
    context = RunContext(info.model_id, info.encoder_id, run_id)
    input_spec = info.input_spec
    if config.max_pixels is None:
        config = dataclasses.replace(config, max_pixels=info.max_pixels)
    manifest_path = FileSystems.join(config.output, schema.manifest_path(run_id))
    # A dry run builds the graph only, offline: it looks at neither inputs nor output.
    look = not beam_options.is_dry_run(options)
    if look:
        _check_inputs(config)
        if FileSystems.exists(manifest_path) or FileSystems.match(
                [FileSystems.join(config.output, schema.partition(schema.CAPTIONS_DIR, run_id), '*')],
                limits=[1])[0].metadata_list:
            raise FileExistsError(f'run {run_id} already exists under {config.output}; pass another --run-id')

    pipeline = beam.Pipeline(options=options)
    outputs = build(pipeline, config, context, input_spec, progress=beam_options.is_local(options), look=look)
    captions_files = _write_rows(outputs.captions, 'WriteCaptions', config.output, schema.CAPTIONS_DIR, run_id,
                                 schema.CAPTIONS_SCHEMA)
    errors_files = _write_rows(outputs.errors, 'WriteErrors', config.output, schema.ERRORS_DIR, run_id,
                               schema.ERRORS_SCHEMA)
    beam_flags = list(beam_args)
    _ = (outputs.counts
         | 'Manifest' >> beam.Map(_manifest, beam.pvalue.AsList(captions_files), beam.pvalue.AsList(errors_files),
                                  config, context, started, beam_flags)
         | 'WriteManifest' >> beam.Map(lambda document: storage.write_bytes(manifest_path, manifest.dumps(document).encode('utf-8'),
                                                                    'application/json')))
    result = pipeline.run()
    if not look or beam_options.is_template_launch(options):
        return None
    result.wait_until_finish()
    return manifest.validate(json.loads(storage.read_bytes(manifest_path)), 'caption')
