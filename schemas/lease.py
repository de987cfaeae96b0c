"""The lease on a caption output: which run may write under it now.

One small JSON object at ``OUTPUT/lease.json`` (local or gs://), created only
if absent. Its holder rewrites it every heartbeat and deletes it when done; a
lease whose heartbeat is older than the holder's own timeout belongs to a run
that died, and the next run takes it over::

  {"run_id": "20261207T023000.000Z", "token": "<run id>/<uuid4 hex>",
   "started_at": "2026-12-07T02:30:00.123+00:00", "heartbeat_at": "2026-12-07T02:41:00.456+00:00",
   "where": "host build-7, pid 4242", "timeout_seconds": 600}
"""
import datetime
import json

FILE_NAME = 'lease.json'

RUN_ID = 'run_id'                  # the holder's run id (its captions/run=RUN_ID/ partition)
TOKEN = 'token'                    # unique per acquisition: tells the holder's own lease from a later one
STARTED_AT = 'started_at'          # when the holder took the lease, ISO 8601 UTC
HEARTBEAT_AT = 'heartbeat_at'      # the holder's last heartbeat, ISO 8601 UTC
WHERE = 'where'                    # where the holder runs: a host and pid, or a Dataflow job
TIMEOUT_SECONDS = 'timeout_seconds'  # a heartbeat older than this means the holder is gone

FIELDS = (RUN_ID, TOKEN, STARTED_AT, HEARTBEAT_AT, WHERE, TIMEOUT_SECONDS)

# A run that stops heartbeating (killed, its machine gone) blocks the output
# this long at most; a holder heartbeats every TIMEOUT / HEARTBEATS_PER_TIMEOUT.
DEFAULT_TIMEOUT_SECONDS = 600.0
HEARTBEATS_PER_TIMEOUT = 10


def dumps(lease):
    """The lease as JSON bytes."""
    return (json.dumps({field: lease[field] for field in FIELDS}, indent=1, sort_keys=True) + '\n').encode('utf-8')


def loads(data, where):
    """The lease dict in ``data``; ValueError naming ``where`` when it is not a lease."""
    try:
        lease = json.loads(data)
        missing = [field for field in FIELDS if field not in lease]
        if missing:
            raise ValueError(f'lacks {", ".join(missing)}')
        for field in (STARTED_AT, HEARTBEAT_AT):
            timestamp(lease, field)
        float(lease[TIMEOUT_SECONDS])
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f'{where} is not an img2txt lease ({e}); delete it if no run is writing there') from None
    return lease


def timestamp(lease, field):
    """The aware datetime of ``lease[field]`` (STARTED_AT or HEARTBEAT_AT)."""
    moment = datetime.datetime.fromisoformat(lease[field])
    if moment.tzinfo is None:
        raise ValueError(f'{field} {lease[field]!r} has no time zone')
    return moment
