"""Beam's gs:// filesystem, sources and sinks really work against the GCS emulator."""
import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import WriteToParquet

from img2txt.pipelines.beam_options import pipeline_options


def test_filesystems_create_match_open_delete(gcs, gcs_bucket):
    path = f'gs://{gcs_bucket}/dir/blob.bin'
    payload = bytes(range(256)) * 4096  # 1 MiB: more than one upload chunk
    with FileSystems.create(path) as f:
        f.write(payload)

    [result] = FileSystems.match([f'gs://{gcs_bucket}/dir/*'])
    assert [(m.path, m.size_in_bytes) for m in result.metadata_list] == [(path, len(payload))]
    with FileSystems.open(path) as f:
        assert f.read() == payload
    assert gcs.client.bucket(gcs_bucket).blob('dir/blob.bin').download_as_bytes() == payload

    FileSystems.delete([path])
    assert FileSystems.match([f'gs://{gcs_bucket}/dir/*'])[0].metadata_list == []
    assert not FileSystems.exists(path)


@pytest.mark.parametrize('beam_args', [[], ['--direct_running_mode=multi_processing', '--direct_num_workers=2']],
                         ids=['in_memory', 'multi_processing'])
def test_pipeline_reads_matched_files_and_writes_text(gcs, gcs_bucket, beam_args):
    bucket = gcs.client.bucket(gcs_bucket)
    inputs = {'in/a.txt': b'alpha', 'in/b.txt': b'beta', 'in/sub/c.txt': b'gamma'}
    for name, data in inputs.items():
        bucket.blob(name).upload_from_string(data)
    bucket.blob('other/d.txt').upload_from_string(b'not matched')

    with beam.Pipeline(options=pipeline_options(beam_args)) as p:
        _ = (p
             | 'Match' >> fileio.MatchFiles(f'gs://{gcs_bucket}/in/**')
             | 'Read' >> fileio.ReadMatches()
             | 'Describe' >> beam.Map(lambda f: f'{f.metadata.path} {f.read().decode()}')
             | 'Write' >> beam.io.WriteToText(f'gs://{gcs_bucket}/out/part'))

    blobs = list(gcs.client.list_blobs(gcs_bucket, prefix='out/'))
    assert [b.name for b in blobs] == ['out/part-00000-of-00001']
    lines = blobs[0].download_as_bytes().decode().splitlines()
    assert sorted(lines) == [f'gs://{gcs_bucket}/{name} {data.decode()}' for name, data in sorted(inputs.items())]


def test_parquet_sink_writes_to_gcs(gcs, gcs_bucket):
    schema = pa.schema([('image', pa.string()), ('caption', pa.string()), ('log_prob', pa.float64())])
    rows = [{'image': f'img{i}.jpg', 'caption': f'a photo of {i} cats', 'log_prob': -0.5 * i} for i in range(5)]

    with beam.Pipeline(options=pipeline_options([])) as p:
        _ = (p
             | beam.Create(rows)
             | WriteToParquet(f'gs://{gcs_bucket}/captions/rows', schema, num_shards=1,
                              shard_name_template='', file_name_suffix='.parquet'))

    path = f'gs://{gcs_bucket}/captions/rows.parquet'
    assert [m.path for m in FileSystems.match([f'gs://{gcs_bucket}/captions/*'])[0].metadata_list] == [path]
    with FileSystems.open(path) as f:
        table = pq.read_table(f)
    assert table.schema == schema
    assert sorted(table.to_pylist(), key=lambda r: r['image']) == rows
