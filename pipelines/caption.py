"""Caption: photo collections (local or gs://) → Parquet rows of captions, with an exported captioner.

::

  [lease] HoldLease: OUTPUT/lease.json, taken before anything reads or writes the output (pipelines.lease)
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
Before that, every file they left is checked (``pipelines.caption_history``):
a damaged one stops the run before it captions anything, naming the file.

One run at a time writes under an output: it holds the output's lease
(``pipelines.lease``) from before it reads the earlier runs until its
manifest is written; a run that finds the lease live exits, naming the
holder. Should runs overlap all the same (``--no-lease``, a lease taken over
from a run that was only slow), a photo may get a row from each; readers
keep one row per (uri, size_bytes, modified_at, model_id), the first
captioned (README, "Captioning photo collections").
"""
import contextlib
import dataclasses
import datetime
import logging
import shutil
import sys
import tempfile
import typing

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import GoogleCloudOptions

import img2txt
from img2txt.model import storage
from img2txt.model.serving import captioner as captioner_lib
from img2txt.pipelines import beam_options, caption_history, decode_images, lease as lease_lib, progress as progress_lib
from img2txt.pipelines.model_handlers import CaptionerModelHandler
from img2txt.schemas import captions as schema, errors, lease as lease_schema, manifest

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
    lease: bool = dataclasses.field(default=True, metadata={
        'help': 'hold the lease on --output (OUTPUT/lease.json) while the run works, so that a run started '
                'meanwhile exits with status 75, naming this one, instead of captioning the same photos; '
                '--no-lease writes without it'})
    lease_timeout_seconds: float = dataclasses.field(default=lease_schema.DEFAULT_TIMEOUT_SECONDS, metadata={
        'help': 'a lease whose last heartbeat is older than this is taken over (its run was killed); the holder '
                'heartbeats every tenth of it'})
    redo_damaged_runs: bool = dataclasses.field(default=False, metadata={
        'help': "with --incremental, when files of earlier runs under --output are damaged (truncated, another "
                "schema, empty, a manifest without its partition): caption those runs' photos again instead of "
                "stopping with the files named"})

    def __post_init__(self):
        if not self.input and not self.input_list:
            raise ValueError('nothing to caption: give --input GLOB (repeatable) or --input-list FILE')
        if self.batch_size < 1:
            raise ValueError(f'--batch-size must be at least 1, got {self.batch_size}')
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f'--top-k must be at least 1, got {self.top_k}')
        if self.run_id is not None and (not self.run_id or any(c in self.run_id for c in '/\\=*?[] ')):
            raise ValueError(f'--run-id {self.run_id!r} must be a non-empty name without / \\ = * ? [ ] or spaces')
        if self.redo_damaged_runs and not self.incremental:
            raise ValueError('--redo-damaged-runs applies to --incremental runs, which read the earlier runs back')
        if not self.lease_timeout_seconds > 0:
            raise ValueError(f'--lease-timeout-seconds must be positive, got {self.lease_timeout_seconds}')


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
    return {
        schema.URI: uri,
        schema.SIZE_BYTES: file.size if file else None,
        schema.MODIFIED_AT: _time(file.modified_us) if file else None,
        **errors.reason(stage, error_type, message),
        schema.MODEL_ID: context.model_id, schema.RUN_ID: context.run_id, schema.FAILED_AT: _now(),
    }


def caption_row(context, file, sha256, width, height, candidates, reused, confidence=None):
    """One ``schemas.captions.CAPTIONS_SCHEMA`` row; ``candidates`` are ``(caption, log_prob, words)``, best first.

    ``confidence``: the earlier row's, for a reused caption (its text may have fewer words than the
    tokens the model scored: exports older than the ``<unk>`` ban dropped it from the text); by default
    computed from the best candidate.
    """
    best = candidates[0]
    return {
        schema.URI: file.uri, schema.SIZE_BYTES: file.size, schema.MODIFIED_AT: _time(file.modified_us),
        schema.SHA256: sha256, schema.WIDTH: width, schema.HEIGHT: height,
        schema.CAPTION: best.caption, schema.LOG_PROB: best.log_prob,
        schema.CONFIDENCE: schema.confidence(best.log_prob, best.words) if confidence is None else confidence,
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
            self._context, file, sha256, image.width, image.height, candidates, reused=True,
            confidence=old[schema.CONFIDENCE]))
            for file, image in grouped['new']]


@dataclasses.dataclass
class CaptionOutputs:
    """The PCollections ``build`` leaves for tests and callers to inspect."""

    captions: beam.PCollection   # caption rows (schemas.captions.CAPTIONS_SCHEMA)
    errors: beam.PCollection     # error rows (schemas.captions.ERRORS_SCHEMA)
    counts: beam.PCollection     # one dict: manifest.CAPTION_COUNTS


def _start(pipeline, held, label, values):
    """``values`` as a PCollection that starts once the job holds the lease (``held``), or at once without one."""
    values = list(values)
    if held is None:
        return pipeline | label >> beam.Create(values)
    return held | label >> beam.FlatMap(lambda _, values: values, values)


def _history(pipeline, held, label, files, columns, model_id):
    """The rows of ``model_id`` (only ``columns``) in the Parquet ``files`` of earlier runs."""
    return (_start(pipeline, held, f'{label}Files', files)
            | f'Read{label}' >> beam.io.ReadAllFromParquet(columns=list(columns))
            | f'{label}OfModel' >> beam.Filter(lambda row: row[schema.MODEL_ID] == model_id))


def build(pipeline, config, context, input_spec, history=None, lease=None, progress=None):
    """Adds the caption steps to ``pipeline``.

    Args:
      pipeline: a ``beam.Pipeline``.
      config: a ``CaptionConfig`` whose ``max_pixels`` is set (``run_config`` takes the export's).
      context: the run's ``RunContext`` (the model's ids and the run id).
      input_spec: the captioner's ``InputSpec`` (from the export's config).
      history: with ``config.incremental``, the earlier runs' files to read back
        (``caption_history.scan``); None reads none.
      lease: a ``lease.Lease`` the job takes in its first step, before it reads
        anything under the output, and keeps alive from the workers; None for none.
      progress: a local folder where the steps count progress (``progress``),
        or None; also prints what each glob matches.

    Returns:
      ``CaptionOutputs``; the rows are also written under ``config.output``.
    """
    if config.max_pixels is None:
        raise ValueError('build needs config.max_pixels: the limit of the export (ExportInfo.max_pixels)')
    held = pipeline | 'HoldLease' >> lease_lib.HoldLease(lease) if lease else None
    globs = _start(pipeline, held, 'Globs', sorted(set(config.input)))
    matched = globs | 'MatchGlobs' >> beam.ParDo(_Match(context, False, bool(progress))).with_outputs(
        _Match.ERRORS, main='files')
    match_parts, match_errors = [matched.files], [matched[_Match.ERRORS]]
    if config.input_list:
        listed = (pipeline
                  | 'ReadInputList' >> beam.io.ReadFromText(config.input_list)
                  | 'MatchListed' >> beam.ParDo(_Match(context, True, bool(progress))).with_outputs(
                      _Match.ERRORS, main='files'))
        match_parts.append(listed.files)
        match_errors.append(listed[_Match.ERRORS])
    files = match_parts | 'AllFiles' >> beam.Flatten()

    if config.incremental and history is not None:
        done = (_history(pipeline, held, 'CaptionKeys', history.captions, schema.SKIP_COLUMNS, context.model_id),
                _history(pipeline, held, 'ErrorKeys', history.errors, schema.SKIP_COLUMNS, context.model_id)
                ) | 'DoneKeys' >> beam.Flatten()
    else:
        done = pipeline | 'NothingDone' >> beam.Create([])
    done_by_uri = done | 'DoneByUri' >> beam.Map(
        lambda row: (row[schema.URI], (row[schema.SIZE_BYTES],
                                       _microseconds(row[schema.MODIFIED_AT]) if row[schema.MODIFIED_AT] else None)))
    # The grouping also spreads the files of one glob over the workers.
    todo = ({'files': files | 'ByUri' >> beam.Map(lambda file: (file.uri, file)), 'done': done_by_uri}
            | 'GroupByUri' >> beam.CoGroupByKey()
            | 'SkipDone' >> beam.ParDo(_SkipDone()).with_outputs(_SkipDone.SKIPPED, main='files'))

    work = todo.files
    if lease:
        work = work | 'KeepLease' >> beam.ParDo(lease_lib.KeepAlive(lease))
    if progress:
        total = (todo.files | 'CountToDo' >> beam.combiners.Count.Globally()
                 | 'ProgressTotal' >> beam.ParDo(progress_lib.Total(progress)))
        # The side input makes the runner count the files before it starts on them, so the total shows at once.
        work = work | 'AfterTotal' >> beam.Map(lambda file, _: file, beam.pvalue.AsSingleton(total))
    decoded = (work
               | 'Paths' >> beam.Map(lambda file: (file, file.uri))
               | 'DecodeImages' >> decode_images.DecodeImages(input_spec, config.max_pixels))
    decode_errors = decoded.errors | 'DecodeErrorRows' >> beam.MapTuple(
        lambda file, record: error_row(context, record[errors.STAGE], file.uri, record[errors.ERROR_TYPE],
                                       record[errors.MESSAGE], file))

    images = decoded.images
    reused_parts = []
    if config.incremental and history is not None:
        old = _history(pipeline, held, 'CaptionsByHash', history.captions, schema.REUSE_COLUMNS, context.model_id)
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
        # Counted where each image ends, in the step that ends it: a Flatten of
        # steps would make the runner count only once all of them are done.
        for label, ended in (('Captioned', rows.rows), ('NoCaption', rows[_CaptionRows.ERRORS]),
                             ('DecodeFailed', decode_errors), ('InferFailed', infer_errors),
                             *((f'Reused{i}', part) for i, part in enumerate(reused_parts))):
            _ = ended | f'Progress{label}' >> beam.ParDo(progress_lib.Tick(progress))

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


def _where(options, run_id):
    """Where the run holds its lease: this host and process, or its Dataflow job (named after the run if unnamed)."""
    if beam_options.is_local(options):
        return lease_lib.local_where()
    cloud = options.view_as(GoogleCloudOptions)
    if not cloud.job_name:
        cloud.job_name = 'img2txt-caption-' + ''.join(c if c.isalnum() else '-' for c in run_id.lower()).strip('-')
    return f'Dataflow job {cloud.job_name} (project {cloud.project}, region {cloud.region})'


def run_config(config, beam_args=(), progress_every_seconds=progress_lib.EVERY_SECONDS):
    """Runs the caption pipeline; returns the run manifest (None when the job was only built or submitted).

    A Dataflow dry run (``--dry_run``) only builds and validates the job graph;
    a Dataflow Flex Template launch (``--template_location`` set, or the
    launcher's ``FLEX_TEMPLATE_*`` environment) submits it without waiting:
    the job writes its own manifest when it ends.

    With ``config.lease``, a local run takes the output's lease here, before
    anything else, and releases it when it ends (even by an error); a Dataflow
    job takes it in its first step and releases it in its last, and the
    launching process only checks that no other run holds it. A local run
    prints its progress every ``progress_every_seconds``.

    Raises:
      lease.LeaseHeldError: another run holds the output's lease.
      caption_history.DamagedOutputError: (incremental) files of earlier runs are damaged.
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
    local = beam_options.is_local(options)
    lease = (lease_lib.Lease(config.output, run_id, started.isoformat(), _where(options, run_id),
                             config.lease_timeout_seconds) if config.lease else None)
    with contextlib.ExitStack() as cleanup:
        if look:
            _check_inputs(config)
            if lease and local:
                lease.acquire()
                cleanup.callback(lease.release)  # also when the run fails: the next one need not wait
                lease.keep_alive()
            elif lease:
                lease.check()
            if FileSystems.exists(manifest_path) or FileSystems.match(
                    [FileSystems.join(config.output, schema.partition(schema.CAPTIONS_DIR, run_id), '*')],
                    limits=[1])[0].metadata_list:
                raise FileExistsError(f'run {run_id} already exists under {config.output}; pass another --run-id')
        history = None
        if config.incremental:
            history = (caption_history.scan(config.output, config.redo_damaged_runs) if look
                       else caption_history.History([], [], []))
        progress = None
        if local and look:
            progress = tempfile.mkdtemp(prefix='img2txt-progress-')
            cleanup.callback(shutil.rmtree, progress, ignore_errors=True)

        pipeline = beam.Pipeline(options=options)
        outputs = build(pipeline, config, context, input_spec, history=history, lease=lease, progress=progress)
        captions_files = _write_rows(outputs.captions, 'WriteCaptions', config.output, schema.CAPTIONS_DIR, run_id,
                                     schema.CAPTIONS_SCHEMA)
        errors_files = _write_rows(outputs.errors, 'WriteErrors', config.output, schema.ERRORS_DIR, run_id,
                                   schema.ERRORS_SCHEMA)
        beam_flags = list(beam_args)
        written = (outputs.counts
                   | 'Manifest' >> beam.Map(_manifest, beam.pvalue.AsList(captions_files),
                                            beam.pvalue.AsList(errors_files), config, context, started, beam_flags)
                   | 'WriteManifest' >> beam.Map(lambda document: storage.write_bytes(
                       manifest_path, manifest.dumps(document).encode('utf-8'), 'application/json')))
        if lease:
            _ = written | 'ReleaseLease' >> beam.ParDo(lease_lib.Release(lease))
        if progress:
            cleanup.enter_context(progress_lib.Reporter(progress, progress_every_seconds))
        result = pipeline.run()
        if not look or beam_options.is_template_launch(options):
            return None
        result.wait_until_finish()
    return manifest.loads(storage.read_bytes(manifest_path), 'caption', manifest_path)
