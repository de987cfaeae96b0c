"""Reading a caption output: its run manifests and its Parquet parts, newest run first."""
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from img2txt.model import storage
from img2txt.schemas import captions as schema, manifest


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


def run_parts(captions_dir, kind):
    """{run id: [Parquet paths]} of every run's files of ``kind``, from their ``run=ID`` folders."""
    runs = {}
    for metadata in FileSystems.match([FileSystems.join(captions_dir, schema.all_parts(kind))])[0].metadata_list:
        runs.setdefault(schema.run_of_part(metadata.path), []).append(metadata.path)
    return {run_id: sorted(paths) for run_id, paths in runs.items()}


def newest_first(manifests, run_ids):
    """Run ids by their manifest's start time, newest first; runs without a manifest (unfinished) last."""
    def started(run_id):
        return manifests[run_id][manifest.STARTED_AT] if run_id in manifests else ''
    return sorted({*manifests, *run_ids}, key=lambda run_id: (started(run_id), run_id), reverse=True)


def read_rows(parts, order, columns, limit):
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
