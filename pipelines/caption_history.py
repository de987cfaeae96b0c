"""The earlier runs under a caption output, checked before an incremental run trusts them.

An incremental run skips what earlier runs did, so it first looks at every
file they left (``schemas.captions``): each run's Parquet files must be
Parquet with the columns the run reads back, and each run manifest must be a
caption manifest whose Parquet files exist. A file that fails is *damaged*:
truncated or not Parquet, of another schema, empty (0 bytes), a manifest
that is not one, or a manifest whose partition is gone.

``scan`` names every damaged file. By default the run stops before it
captions anything (``DamagedOutputError``, one line per file); with
``redo_damaged_runs`` every file of a damaged run is left out of what the run
reads back, so that run's photos count as not done and are captioned again.
"""
import concurrent.futures
import json
import logging
import os
import typing

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from img2txt.schemas import captions as schema, manifest

_log = logging.getLogger(__name__)

# Footers are small reads; on gs:// each is a round trip, so several at once.
_READERS = 16


class Damage(typing.NamedTuple):
    """A damaged file: its path, the run it belongs to (or None) and why it cannot be trusted."""

    path: str
    run_id: str | None
    reason: str


class History(typing.NamedTuple):
    """The Parquet files of earlier runs to read back, and the damaged files left out."""

    captions: list[str]
    errors: list[str]
    damaged: list[Damage]


class DamagedOutputError(ValueError):
    """Files of earlier runs under the output cannot be trusted; the message names each on a line of its own."""

    def __init__(self, output, damaged):
        self.damaged = damaged
        lines = '\n'.join(f'  {damage.path}: {damage.reason}' for damage in damaged)
        super().__init__(
            f'{len(damaged)} damaged file{"s" if len(damaged) != 1 else ""} of earlier runs under {output}; '
            'nothing was captioned. Restore or remove them, or pass --redo-damaged-runs to caption those runs\' '
            f'photos again:\n{lines}')


# The columns an incremental run reads from each kind of file, with their types.
_NEEDED = {
    schema.CAPTIONS_DIR: {name: schema.CAPTIONS_SCHEMA.field(name).type
                          for name in dict.fromkeys(schema.SKIP_COLUMNS + schema.REUSE_COLUMNS)},
    schema.ERRORS_DIR: {name: schema.ERRORS_SCHEMA.field(name).type for name in schema.SKIP_COLUMNS},
}


def scan(output, redo_damaged_runs=False):
    """The earlier runs' files under ``output`` to read back.

    Raises:
      DamagedOutputError: some file is damaged and ``redo_damaged_runs`` is False.
    """
    parts = {kind: _match(FileSystems.join(output, schema.all_parts(kind))) for kind in _NEEDED}
    with concurrent.futures.ThreadPoolExecutor(_READERS) as pool:
        checks = {(kind, path): pool.submit(_check_parquet, path, size, _NEEDED[kind])
                  for kind, files in parts.items() for path, size in files.items()}
        damaged = [Damage(path, schema.run_of_part(path), future.result()) for (_, path), future in checks.items()
                   if future.result()]
    damaged += _check_manifests(output, {path for files in parts.values() for path in files})
    damaged.sort()
    if damaged and not redo_damaged_runs:
        raise DamagedOutputError(output, damaged)
    bad_runs = {damage.run_id for damage in damaged}
    for damage in damaged:
        _log.warning('%s: %s; run %s is left out: its photos are captioned again', damage.path, damage.reason,
                     damage.run_id)
    keep = {kind: sorted(path for path in files if schema.run_of_part(path) not in bad_runs) for kind, files in parts.items()}
    return History(keep[schema.CAPTIONS_DIR], keep[schema.ERRORS_DIR], damaged)


def _match(pattern):
    """{path: size} of the files ``pattern`` matches."""
    return {m.path: m.size_in_bytes for m in FileSystems.match([pattern])[0].metadata_list}




def _tail(path):
    """``kind/run=ID/name`` of a partition's file: the same whatever the output was called when it was written."""
    return '/'.join(path.replace(os.sep, '/').rsplit('/', 3)[-3:])


def _check_parquet(path, size, needed):
    """Why the Parquet file at ``path`` cannot be read back for ``needed`` ({column: type}), or None."""
    if size == 0:
        return 'empty file (0 bytes), not Parquet'
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            found = pq.ParquetFile(f).schema_arrow
    except (pa.ArrowException, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else repr(e)
        return f'truncated or not Parquet ({type(e).__name__}: {why})'
    missing = [name for name in needed if found.get_field_index(name) < 0]
    if missing:
        return f'another schema: it lacks the column{"s" if len(missing) > 1 else ""} {", ".join(missing)}'
    wrong = [f'{name} is {found.field(name).type}, not {kind}' for name, kind in needed.items()
             if not found.field(name).type.equals(kind)]
    if wrong:
        return f'another schema: {"; ".join(wrong)}'
    return None


def _check_manifests(output, parquet_files):
    """Damage of the run manifests under ``output``: unreadable, or naming Parquet files that are not there."""
    damaged = []
    present = {_tail(file) for file in parquet_files}
    for path in sorted(_match(FileSystems.join(output, schema.manifest_path('*')))):
        run_id = os.path.basename(path)[:-len('.json')]
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                document = manifest.validate(json.loads(f.read()), 'caption')
            written = [file for kind in (schema.CAPTIONS_DIR, schema.ERRORS_DIR)
                       for file in document[manifest.OUTPUTS][kind]]
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as e:
            damaged.append(Damage(path, run_id, f'not a caption run manifest ({type(e).__name__}: {e})'))
            continue
        missing = [_tail(file) for file in written if _tail(file) not in present]
        if missing:
            damaged.append(Damage(path, run_id, f'its run\'s partition is missing {len(missing)} of the '
                                                f'{len(written)} Parquet files it lists, e.g. '
                                                f'{FileSystems.join(output, missing[0])}'))
    return damaged
