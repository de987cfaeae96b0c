"""The caption pipeline end to end: a real exported captioner, real photos and bad files, real Parquet."""
import datetime
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import apache_beam as beam
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from PIL import Image

from captioner_data import CAPTIONS, encoded, photo, png_declaring
from dataflow_flags import DATAFLOW_DRY_RUN
import img2txt
from img2txt.jobs import caption as caption_job, cli
from img2txt.model.serving import export
from img2txt.model.serving.captioner import Candidate, Captioner
from img2txt.pipelines import beam_options, caption
from img2txt.model.serving.image_decoding import DecodedImage
from img2txt.schemas import captioner, captions as schema, lease as lease_schema, manifest

# File name → the photo it holds, in unusual but valid dress.
GOOD = {
    'coffee.jpg': 'coffee',
    'chelsea.png': 'chelsea',
    'astronaut.PNG': 'astronaut',           # a JPEG named .PNG, upper case
    'rocket': 'rocket',                     # no extension
    'café au lait ☕ 2.JPG': 'coffee',      # spaces and non-ASCII in the name
}
# File name → the error type its row must give.
BAD = {
    'empty.jpg': 'EmptyImageError',
    'truncated.jpg': 'CorruptImageError',
    'notes.jpg': 'NotAnImageError',
    'drawing.svg': 'UnsupportedFormatError',
    'IMG_0001.HEIC': 'UnsupportedFormatError',
    'favicon.ico': 'UnsupportedFormatError',
    'bomb.png': 'ImageTooLargeError',
}


def write_photos(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in GOOD.items():
        image = photo(source)
        fmt = 'PNG' if name == 'chelsea.png' else 'JPEG'
        (folder / name).write_bytes(encoded(image, fmt, **({'quality': 90} if fmt == 'JPEG' else {})))
    jpeg = encoded(photo('rocket'), 'JPEG')
    contents = {
        'empty.jpg': b'',
        'truncated.jpg': jpeg[:len(jpeg) // 3],
        'notes.jpg': b'remember to buy milk\n',
        'drawing.svg': b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect/></svg>',
        'IMG_0001.HEIC': b'\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic' + bytes(200),
        'favicon.ico': encoded(Image.new('RGB', (16, 16), (200, 0, 0)), 'ICO'),
        'bomb.png': png_declaring(20_000, 20_000),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope='module')
def model(small_captioner):
    """(export_dir, model_id) of a small captioner trained on the four photos."""
    return small_captioner


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp('collection') / 'photos')


def config(model, inputs, output, **options):
    return caption.CaptionConfig(model=model[0], input=list(inputs), output=str(output), batch_size=4, **options)


def read_rows(output, kind, run_id=None):
    pattern = os.path.join(output, schema.partition(kind, run_id) if run_id else f'{kind}/*', '*.parquet')
    return pq.read_table(sorted(glob.glob(pattern)), schema=schema.CAPTIONS_SCHEMA
                         if kind == schema.CAPTIONS_DIR else schema.ERRORS_SCHEMA).to_pylist()


@pytest.fixture(scope='module')
def local_run(model, photos, tmp_path_factory):
    output = tmp_path_factory.mktemp('output')
    result = caption.run_config(config(model, [str(photos / '*')], output, run_id='first'))
    return output, result


def test_every_file_is_captioned_or_has_an_error_with_its_reason(local_run, photos, model):
    output, result = local_run
    captioned = {os.path.basename(row[schema.URI]): row for row in read_rows(output, schema.CAPTIONS_DIR)}
    failed = {os.path.basename(row[schema.URI]): row for row in read_rows(output, schema.ERRORS_DIR)}
    assert sorted(captioned) == sorted(GOOD)
    assert {name: row[schema.ERROR_TYPE] for name, row in failed.items()} == BAD
    assert failed['drawing.svg'][schema.MESSAGE].startswith('SVG')
    assert failed['IMG_0001.HEIC'][schema.MESSAGE].startswith('HEIC')
    assert {row[schema.STAGE] for row in failed.values()} == {'decode'}
    assert result[manifest.COUNTS] == {'matched': 12, 'skipped': 0, 'captioned': 5, 'reused': 0, 'failed': 7}
    assert manifest.validate(json.loads(open(os.path.join(output, schema.manifest_path('first'))).read()),
                             'caption') == result
    assert result[manifest.MODEL_ID] == model[1]


def test_rows_describe_the_file_and_the_caption(local_run, photos, model):
    output, _ = local_run
    rows = {os.path.basename(row[schema.URI]): row for row in read_rows(output, schema.CAPTIONS_DIR)}
    for name, source in GOOD.items():
        row = rows[name]
        path = photos / name
        assert row[schema.URI] == str(path)  # spaces and non-ASCII round-trip
        assert row[schema.CAPTION] == CAPTIONS[source]
        assert row[schema.SIZE_BYTES] == path.stat().st_size
        assert abs(row[schema.MODIFIED_AT].timestamp() - path.stat().st_mtime) < 1e-3
        assert (row[schema.WIDTH], row[schema.HEIGHT]) == photo(source).size
        assert len(row[schema.SHA256]) == 64
        candidates = row[schema.CANDIDATES]
        assert len(candidates) == 3 and candidates[0] == {schema.CAPTION: row[schema.CAPTION],
                                                          schema.LOG_PROB: row[schema.LOG_PROB]}
        assert [c[schema.LOG_PROB] for c in candidates] == sorted((c[schema.LOG_PROB] for c in candidates),
                                                                  reverse=True)
        assert 0.9 < row[schema.CONFIDENCE] <= 1.0  # the captions it was trained on
        assert (row[schema.MODEL_ID], row[schema.RUN_ID], row[schema.REUSED]) == (model[1], 'first', False)
        assert row[schema.ENCODER_ID].startswith('efficientnet_lite0@')


def test_pipeline_captions_equal_the_exported_signatures_on_the_same_photos(local_run, photos, model):
    output, _ = local_run
    rows = {row[schema.URI]: row[schema.CAPTION] for row in read_rows(output, schema.CAPTIONS_DIR)}
    loaded = export.load_captioner(model[0])
    uris = [str(photos / name) for name in sorted(GOOD)]
    outputs = loaded.signatures[captioner.CAPTION_IMAGES](
        **{captioner.IMAGES: tf.constant([open(uri, 'rb').read() for uri in uris])})
    best = [candidates[0] for candidates in export.captions_text(outputs[captioner.CAPTIONS])]
    assert best == [rows[uri] for uri in uris]


def test_incremental_runs_caption_only_what_is_new(model, photos, tmp_path):
    collection = tmp_path / 'photos'
    shutil.copytree(photos, collection)
    output = tmp_path / 'output'
    inputs = [str(collection / '**')]
    first = caption.run_config(config(model, inputs, output, incremental=True, run_id='r1'))
    assert first[manifest.COUNTS] == {'matched': 12, 'skipped': 0, 'captioned': 5, 'reused': 0, 'failed': 7}

    again = caption.run_config(config(model, inputs, output, incremental=True, run_id='r2'))
    assert again[manifest.COUNTS] == {'matched': 12, 'skipped': 12, 'captioned': 0, 'reused': 0, 'failed': 0}
    assert read_rows(output, schema.CAPTIONS_DIR, 'r2') == []

    # New photos arrive in a subfolder, one old photo is copied under a new name, one is edited.
    (collection / '2026').mkdir()
    (collection / '2026' / 'chelsea again.jpg').write_bytes(encoded(photo('chelsea'), 'JPEG', quality=80))
    shutil.copy(collection / 'rocket', collection / '2026' / 'rocket copy.jpg')
    (collection / 'notes.jpg').write_bytes(encoded(photo('astronaut'), 'JPEG'))
    third = caption.run_config(config(model, inputs, output, incremental=True, run_id='r3'))
    assert third[manifest.COUNTS] == {'matched': 14, 'skipped': 11, 'captioned': 3, 'reused': 1, 'failed': 0}
    rows = {os.path.relpath(row[schema.URI], collection): row for row in read_rows(output, schema.CAPTIONS_DIR, 'r3')}
    assert {name: (row[schema.CAPTION], row[schema.REUSED]) for name, row in rows.items()} == {
        os.path.join('2026', 'chelsea again.jpg'): (CAPTIONS['chelsea'], False),
        os.path.join('2026', 'rocket copy.jpg'): (CAPTIONS['rocket'], True),
        'notes.jpg': (CAPTIONS['astronaut'], False),
    }


def test_multi_processing_runner_writes_the_same_rows(local_run, model, photos, tmp_path):
    output, _ = local_run
    caption.run_config(config(model, [str(photos / '*')], tmp_path, run_id='first'),
                       ['--direct_running_mode=multi_processing', '--direct_num_workers=2'])

    def comparable(rows):
        return sorted(({k: v for k, v in row.items() if k not in (schema.CAPTIONED_AT, schema.FAILED_AT)}
                       for row in rows), key=lambda row: row[schema.URI])
    assert comparable(read_rows(tmp_path, schema.ERRORS_DIR)) == comparable(read_rows(output, schema.ERRORS_DIR))
    # The same rows and captions, ranked the same. The log-probabilities are identical with oneDNN's
    # kernels; TensorFlow's others (TF_ENABLE_ONEDNN_OPTS=0) may round a candidate's last bit differently
    # when the runner batches it with other photos.
    def split(rows):
        floats = [[row[schema.LOG_PROB], row[schema.CONFIDENCE], *(c[schema.LOG_PROB] for c in row[schema.CANDIDATES])]
                  for row in rows]
        rest = [{**{k: v for k, v in row.items() if k not in (schema.LOG_PROB, schema.CONFIDENCE)},
                 schema.CANDIDATES: [c[schema.CAPTION] for c in row[schema.CANDIDATES]]} for row in rows]
        return rest, floats
    mine, my_floats = split(comparable(read_rows(tmp_path, schema.CAPTIONS_DIR)))
    theirs, their_floats = split(comparable(read_rows(output, schema.CAPTIONS_DIR)))
    assert mine == theirs
    for a, b in zip(my_floats, their_floats):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_duckdb_reads_every_run_once(model, photos, tmp_path):
    inputs = [str(photos / 'coffee.jpg'), str(photos / 'rocket'), str(photos / 'empty.jpg')]
    caption.run_config(config(model, inputs, tmp_path, run_id='monday'))
    caption.run_config(config(model, inputs[:2], tmp_path, run_id='tuesday'))
    rows = duckdb.sql(
        f"SELECT run, uri, caption FROM read_parquet('{tmp_path}/captions/*/*.parquet', hive_partitioning=true) "
        'ORDER BY run, uri').fetchall()
    assert rows == [(run, str(photos / name), CAPTIONS[source]) for run in ('monday', 'tuesday')
                    for name, source in (('coffee.jpg', 'coffee'), ('rocket', 'rocket'))]
    [(errors,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/errors/*/*.parquet', "
                             'hive_partitioning=true)').fetchall()
    assert errors == 1


def test_input_list_names_missing_files_as_match_errors(model, photos, tmp_path):
    listing = tmp_path / 'uris.txt'
    listing.write_text(f'{photos / "coffee.jpg"}\n\n{photos / "gone.jpg"}\n')
    result = caption.run_config(caption.CaptionConfig(model=model[0], input_list=str(listing),
                                                      output=str(tmp_path / 'out'), run_id='listed'))
    assert result[manifest.COUNTS] == {'matched': 2, 'skipped': 0, 'captioned': 1, 'reused': 0, 'failed': 1}
    [error] = read_rows(tmp_path / 'out', schema.ERRORS_DIR)
    assert (error[schema.URI], error[schema.STAGE], error[schema.SIZE_BYTES]) == (
        str(photos / 'gone.jpg'), 'match', None)


def test_reads_photos_and_writes_parquet_on_gcs(model, photos, gcs, gcs_bucket):
    bucket = gcs.bucket(gcs_bucket)
    for name in ('coffee.jpg', 'café au lait ☕ 2.JPG', 'notes.jpg'):
        bucket.blob(f'albums/2026/{name}').upload_from_filename(str(photos / name))
    output = f'gs://{gcs_bucket}/captioned'
    result = caption.run_config(config(model, [f'gs://{gcs_bucket}/albums/**'], output, run_id='cloud'))
    assert result[manifest.COUNTS] == {'matched': 3, 'skipped': 0, 'captioned': 2, 'reused': 0, 'failed': 1}
    names = sorted(blob.name for blob in bucket.list_blobs(prefix='captioned/'))
    assert 'captioned/runs/cloud.json' in names
    assert f'captioned/{lease_schema.FILE_NAME}' not in names  # held while it ran, released at its end
    [part] = [n for n in names if n.startswith('captioned/captions/run=cloud/')]
    table = pq.read_table(pa.BufferReader(bucket.blob(part).download_as_bytes()))
    assert sorted(zip(table.column(schema.URI).to_pylist(), table.column(schema.CAPTION).to_pylist())) == [
        (f'gs://{gcs_bucket}/albums/2026/café au lait ☕ 2.JPG', CAPTIONS['coffee']),
        (f'gs://{gcs_bucket}/albums/2026/coffee.jpg', CAPTIONS['coffee'])]


def test_cli_dataflow_dry_run_builds_the_job_graph_offline(model, photos, capsys, monkeypatch):
    jobs = []
    run = beam.Pipeline.run

    def run_and_keep_the_job(pipeline, *args, **kwargs):
        result = run(pipeline, *args, **kwargs)
        jobs.append(result.job)  # Pipeline.run runs a copy made from its runner API proto: the last is the job
        return result

    monkeypatch.setattr(beam.Pipeline, 'run', run_and_keep_the_job)
    status = cli.main(['caption', '--model', model[0], '--input', str(photos / '*.jpg'),
                       '--output', 'gs://img2txt-test/captions', '--incremental', *DATAFLOW_DRY_RUN])
    assert status == 0
    assert 'dry run' in capsys.readouterr().out
    # The job itself holds the lease: its first step takes it, the steps that read the output or start the
    # work wait for it, the workers heartbeat it and the last step releases it.
    job = jobs[-1]
    transforms = {t.unique_name: t for t in job.proto_pipeline.components.transforms.values()}
    [held] = transforms['HoldLease/AcquireLease'].outputs.values()
    for step in ('Globs', 'CaptionKeysFiles', 'ErrorKeysFiles', 'CaptionsByHashFiles'):
        assert list(transforms[step].inputs.values()) == [held], step
    assert 'KeepLease' in transforms and 'ReleaseLease' in transforms
    [written] = transforms['WriteManifest'].outputs.values()
    assert list(transforms['ReleaseLease'].inputs.values()) == [written]


def test_cli_errors_are_one_line(model, tmp_path, capsys):
    assert cli.main(['caption', '--model', model[0], '--input', str(tmp_path / 'nothing-here' / '*.jpg'),
                     '--output', str(tmp_path / 'out')]) == 2
    assert capsys.readouterr().err.strip() == (
        f'img2txt caption: error: --input {tmp_path / "nothing-here" / "*.jpg"} matches no files')
    assert cli.main(['caption', '--model', str(tmp_path), '--input', str(tmp_path), '--output', str(tmp_path)]) == 2
    assert 'is not an exported captioner' in capsys.readouterr().err


def test_describe_prints_top_captions_and_names_bad_files(model, photos, capsys):
    status = cli.main(['describe', '--model', model[0], str(photos / 'coffee.jpg'), str(photos / 'notes.jpg'),
                       str(photos / 'rocket'), '--top-k', '2'])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.strip() == f'{photos / "notes.jpg"}: error: NotAnImageError: not an image: no known image ' \
                                   "format matches the first bytes b'remember'"
    lines = captured.out.splitlines()
    assert lines[0] == f'Captions for {photos / "coffee.jpg"}:'
    assert lines[1].startswith(f'  0) {CAPTIONS["coffee"]} (p=0.')
    assert lines[2].startswith('  1) ')
    assert lines[3] == f'Captions for {photos / "rocket"}:' and lines[4].startswith(f'  0) {CAPTIONS["rocket"]} (p=')
    assert len(lines) == 6


def test_beam_counters_add_up_like_the_manifest(model, photos, tmp_path):
    captioner_ = Captioner.load(model[0])
    context = caption.RunContext(captioner_.model_id, captioner_.encoder_id, 'counted')
    run_config = config(model, [str(photos / '*')], tmp_path, run_id='counted', max_pixels=captioner_.max_pixels)
    pipeline = beam.Pipeline(options=beam_options.pipeline_options([]))
    caption.build(pipeline, run_config, context, captioner_.input_spec)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in
                result.metrics().query(MetricsFilter().with_namespace('img2txt_caption'))['counters']}
    assert counters == {'matched': 12, 'captioned': 5, 'reused': 0, 'failed': 7}


def test_an_attention_export_captions_unchanged(attention_captioner, photos, tmp_path):
    result = caption.run_config(config(attention_captioner, [str(photos / '*')], tmp_path, run_id='attention'))
    assert result[manifest.MODEL_ID] == attention_captioner[1] and attention_captioner[1].startswith('attention@')
    assert result[manifest.COUNTS] == {'matched': 12, 'skipped': 0, 'captioned': 5, 'reused': 0, 'failed': 7}
    rows = {os.path.basename(row[schema.URI]): row for row in read_rows(tmp_path, schema.CAPTIONS_DIR)}
    assert {name: row[schema.CAPTION] for name, row in rows.items()} == {
        name: CAPTIONS[source] for name, source in GOOD.items()}
    assert all(row[schema.MODEL_ID] == attention_captioner[1] and len(row[schema.CANDIDATES]) == 3
               for row in rows.values())
    failed = read_rows(tmp_path, schema.ERRORS_DIR)
    assert {os.path.basename(row[schema.URI]): row[schema.ERROR_TYPE] for row in failed} == BAD


def test_describe_takes_an_attention_export(attention_captioner, photos, capsys):
    assert cli.main(['describe', '--model', attention_captioner[0], str(photos / 'rocket'), '--top-k', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f'Captions for {photos / "rocket"}:' and lines[1].startswith(f'  0) {CAPTIONS["rocket"]} (p=')
    assert len(lines) == 2


def caption_args(model, inputs, output, *flags):
    """``img2txt caption``'s argv for ``inputs`` into ``output``."""
    return ['caption', '--model', model[0], *(arg for path in inputs for arg in ('--input', str(path))),
            '--output', str(output), '--batch-size', '4', *flags]


def wait_for(condition, seconds=180):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f'waited {seconds} s'
        time.sleep(0.02)


def lines_of(stream, prefix):
    return [line for line in stream.splitlines() if line.startswith(prefix)]


def captioned_uris(output):
    return sorted(row[schema.URI] for row in read_rows(output, schema.CAPTIONS_DIR))


def test_overlapping_runs_the_second_is_skipped_naming_the_first_and_nothing_is_captioned_twice(
        model, photos, tmp_path, capsys):
    output = tmp_path / 'out'
    results = {}
    first = threading.Thread(target=lambda: results.update(first=caption.run_config(
        config(model, [str(photos / '*')], output, incremental=True, run_id='first'))))
    first.start()
    try:
        wait_for(lambda: (output / lease_schema.FILE_NAME).exists() or not first.is_alive())
        assert first.is_alive()
        status = cli.main(caption_args(model, [photos / '*'], output, '--incremental', '--run-id', 'second'))
        still_running = first.is_alive()
    finally:
        first.join()
    assert still_running, 'the first run ended before the second one started: no overlap was tested'
    assert status == caption_job.EXIT_LEASE_HELD == 75
    [line] = lines_of(capsys.readouterr().err, 'img2txt caption:')
    started = results['first'][manifest.STARTED_AT]
    assert line.startswith(f'img2txt caption: skipped: {output} is leased by run first, started {started} on host '
                           f'{socket.gethostname()}, pid {os.getpid()} (last heartbeat ')
    assert results['first'][manifest.COUNTS] == {'matched': 12, 'skipped': 0, 'captioned': 5, 'reused': 0,
                                                 'failed': 7}
    assert not (output / 'runs' / 'second.json').exists() and not glob.glob(str(output / '*' / 'run=second'))
    assert not (output / lease_schema.FILE_NAME).exists()  # released when the first run ended

    rerun = caption.run_config(config(model, [str(photos / '*')], output, incremental=True, run_id='rerun'))
    assert rerun[manifest.COUNTS] == {'matched': 12, 'skipped': 12, 'captioned': 0, 'reused': 0, 'failed': 0}
    assert captioned_uris(output) == sorted(str(photos / name) for name in GOOD)


def test_a_killed_run_blocks_the_output_no_longer_than_its_lease_timeout(model, photos, tmp_path, capsys):
    output = tmp_path / 'out'
    args = caption_args(model, [photos / '*'], output, '--incremental', '--lease-timeout-seconds', '5')
    with open(tmp_path / 'killed.log', 'wb') as log:
        killed = subprocess.Popen([sys.executable, '-m', 'img2txt.jobs.cli', *args, '--run-id', 'killed'],
                                  stdout=log, stderr=log)
        try:
            wait_for(lambda: (output / lease_schema.FILE_NAME).exists() or killed.poll() is not None)
            time.sleep(1)  # at work
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.wait()
    assert killed.returncode == -signal.SIGKILL, (tmp_path / 'killed.log').read_text()
    lease = json.loads((output / lease_schema.FILE_NAME).read_text())
    assert lease[lease_schema.RUN_ID] == 'killed'

    assert cli.main(args + ['--run-id', 'too-soon']) == caption_job.EXIT_LEASE_HELD
    assert lines_of(capsys.readouterr().err, 'img2txt caption: skipped: ')
    expires = lease_schema.timestamp(lease, lease_schema.HEARTBEAT_AT) + datetime.timedelta(seconds=5)
    time.sleep(max(0.0, (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 0.2)

    assert cli.main(args + ['--run-id', 'after']) == 0
    err = capsys.readouterr().err
    assert f'took over the lease on {output} from run killed' in err
    assert not (output / lease_schema.FILE_NAME).exists()
    assert captioned_uris(output) == sorted(str(photos / name) for name in GOOD)  # nothing twice


def test_a_local_run_shows_its_progress_while_it_works(model, photos, tmp_path, capfd):
    caption.run_config(config(model, [str(photos / '*')], tmp_path, run_id='watched'), progress_every_seconds=0.2)
    err = capfd.readouterr().err
    working = [line for line in err.splitlines() if re.fullmatch(
        r'caption: \d+/12 images, \d+\.\d images/s, (about \d+ s left|time left not known yet)', line)]
    assert working, err
    assert re.search(r'^caption: 12/12 images done in \d+ s, \d+\.\d images/s$', err, re.MULTILINE), err


def test_readers_count_each_photo_once_even_when_runs_overlapped(model, photos, tmp_path):
    inputs = [str(photos / 'coffee.jpg'), str(photos / 'rocket')]
    # What two overlapping runs leave (--no-lease): both captioned the same photos.
    for run_id in ('night', 'overlap'):
        caption.run_config(config(model, inputs, tmp_path, run_id=run_id, lease=False))
    assert len(read_rows(tmp_path, schema.CAPTIONS_DIR)) == 4
    readme = open(os.path.join(os.path.dirname(img2txt.__file__), 'README.md')).read()
    [query] = [block for block in re.findall(r'```sql\n(.*?)```', readme, re.DOTALL) if block.startswith('-- duckdb')]
    connection = duckdb.connect()
    *views, select = [statement for statement in query.replace("'captions/captions/", f"'{tmp_path}/captions/")
                      .split(';') if statement.strip()]
    for statement in views:
        connection.execute(statement)
    rows = connection.execute(select).fetchall()
    assert sorted((uri, caption_) for _, uri, caption_, _ in rows) == [
        (str(photos / 'coffee.jpg'), CAPTIONS['coffee']), (str(photos / 'rocket'), CAPTIONS['rocket'])]
    assert {run for run, *_ in rows} == {'night'}  # the first captioned


@pytest.fixture(scope='module')
def earlier_run(model, photos, tmp_path_factory):
    """An output holding one incremental run, r1, of three files: two captioned, one failed."""
    output = tmp_path_factory.mktemp('earlier') / 'out'
    caption.run_config(config(model, DAMAGE_INPUTS(photos), output, incremental=True, run_id='r1'))
    return output


def DAMAGE_INPUTS(photos):  # noqa: N802
    return [str(photos / 'coffee.jpg'), str(photos / 'rocket'), str(photos / 'notes.jpg')]


def damage(output, case):
    """Damages ``output`` as ``case`` says; returns (the damaged file, its run, the start of the reason given)."""
    [captions_part] = glob.glob(str(output / schema.partition(schema.CAPTIONS_DIR, 'r1') / '*.parquet'))
    [errors_part] = glob.glob(str(output / schema.partition(schema.ERRORS_DIR, 'r1') / '*.parquet'))
    if case == 'truncated':
        data = open(captions_part, 'rb').read()
        open(captions_part, 'wb').write(data[:len(data) // 2])
        return captions_part, 'r1', 'truncated or not Parquet (ArrowInvalid: Parquet magic bytes not found in footer'
    if case == 'another schema':
        foreign = output / schema.partition(schema.CAPTIONS_DIR, 'imported') / 'photos.parquet'
        foreign.parent.mkdir(parents=True)
        pq.write_table(pa.table({'uri': ['a.jpg'], 'caption': ['a dog'], 'size_bytes': ['12 kB']}), foreign)
        return str(foreign), 'imported', ('another schema: it lacks the columns modified_at, model_id, sha256, width, '
                                          'height, log_prob, confidence, candidates')
    if case == 'empty':
        open(errors_part, 'wb').close()
        return errors_part, 'r1', 'empty file (0 bytes), not Parquet'
    assert case == 'manifest without its partition'
    shutil.rmtree(output / schema.partition(schema.CAPTIONS_DIR, 'r1'))
    return (str(output / schema.manifest_path('r1')), 'r1',
            f"its run's partition is missing 1 of the 2 Parquet files it lists, e.g. {captions_part}")


@pytest.mark.parametrize('case', ['truncated', 'another schema', 'empty', 'manifest without its partition'])
def test_damaged_files_of_earlier_runs_are_named_and_nothing_is_captioned(case, earlier_run, model, photos, tmp_path,
                                                                          capsys):
    output = tmp_path / 'out'
    shutil.copytree(earlier_run, output)
    path, run, reason = damage(output, case)
    args = caption_args(model, DAMAGE_INPUTS(photos), output, '--incremental')
    assert cli.main(args + ['--run-id', 'stopped']) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    first, *named = err.rstrip('\n').splitlines()
    assert first == (f'img2txt caption: error: 1 damaged file of earlier runs under {output}; nothing was captioned. '
                     "Restore or remove them, or pass --redo-damaged-runs to caption those runs' photos again:")
    assert len(named) == 1 and named[0].startswith(f'  {path}: {reason}'), named
    assert not glob.glob(str(output / '*' / 'run=stopped')) and not (output / 'runs' / 'stopped.json').exists()
    assert not (output / lease_schema.FILE_NAME).exists()

    # Asked to, the run captions the damaged run's photos again, and says so.
    assert cli.main(args + ['--run-id', 'redone', '--redo-damaged-runs']) == 0
    err = capsys.readouterr().err
    assert f'{path}: {reason}' in err and f'run {run} is left out: its photos are captioned again' in err
    counts = json.loads((output / 'runs' / 'redone.json').read_text())[manifest.COUNTS]
    redone = {'matched': 3, 'skipped': 0, 'captioned': 2, 'reused': 0, 'failed': 1}
    assert counts == (redone if run == 'r1' else {**redone, 'skipped': 3, 'captioned': 0, 'failed': 0})


def test_redoing_damaged_runs_needs_an_incremental_run(model, photos, tmp_path):
    with pytest.raises(ValueError, match='^--redo-damaged-runs applies to --incremental runs'):
        config(model, [str(photos / '*')], tmp_path, redo_damaged_runs=True)


def test_a_reused_row_has_the_confidence_of_the_row_it_reuses():
    # An export older than the <unk> ban scored 5 tokens but wrote 4 words ("a dog on a <unk>" -> "a dog on a"):
    # recounting the words of the text would give the same photo another confidence when reused.
    context = caption.RunContext('show_and_tell@0123456789ab', 'efficientnet_lite0@x', 'earlier')
    photo = caption.File('/photos/dog.jpg', 1000, 1_700_000_000_000_000)
    fresh = caption.caption_row(context, photo, 'f' * 64, 640, 480,
                                [Candidate('a dog on a', -3.0, 5), Candidate('a dog', -4.0, 2)], reused=False)
    assert fresh[schema.CONFIDENCE] == pytest.approx(math.exp(-3.0 / 6))
    copy = caption.File('/photos/copy-of-dog.jpg', 1000, 1_700_000_000_000_000)
    [tagged] = caption._ReuseByHash(context._replace(run_id='later')).process(
        ('f' * 64, {'new': [(copy, DecodedImage(None, 640, 480))], 'old': [fresh]}))
    reused = tagged.value
    assert reused[schema.REUSED] and reused[schema.URI] == copy.uri
    assert reused[schema.CONFIDENCE] == fresh[schema.CONFIDENCE]
    assert reused[schema.CANDIDATES] == fresh[schema.CANDIDATES]
