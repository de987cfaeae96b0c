"""The lease on a caption output: one run at a time writes under it (``schemas.lease``).

A run takes ``OUTPUT/lease.json`` only if no live run holds it (an atomic
create-if-absent, ``model.storage``), heartbeats it while it works and
deletes it when done. A second run that finds a live lease raises
``LeaseHeldError`` naming the holder; one that finds a lease whose heartbeat
is older than the holder's timeout (the holder was killed) takes it over and
logs that it did.

Where the pipeline runs in this process or its children (local runners), the
driver takes the lease before it builds the pipeline, so a refused run ends
at once. On Dataflow the job itself holds it: ``HoldLease`` is the job's
first step (every other step waits for it), ``KeepAlive`` heartbeats from
each worker process that does the work, and ``Release`` ends the job, so a
template launch that returns at once still protects the output.
"""
import dataclasses
import datetime
import logging
import os
import socket
import threading
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from img2txt.model import storage
from img2txt.schemas import lease as schema

_log = logging.getLogger(__name__)


class LeaseHeldError(Exception):
    """Another run holds the output's lease and its heartbeat is fresh: this run must not write there.

    Not an OSError: ``img2txt caption`` exits with a status of its own for it
    (a scheduler's "skipped, the last run is still going").
    """

    def __init__(self, output, holder, age_seconds):
        self.output = output
        self.holder = holder
        super().__init__(
            f'{output} is leased by run {holder[schema.RUN_ID]}, started {holder[schema.STARTED_AT]} on '
            f'{holder[schema.WHERE]} (last heartbeat {age_seconds:.1f} s ago; the lease expires '
            f'{float(holder[schema.TIMEOUT_SECONDS]):g} s after its last heartbeat); this run is skipped and '
            'wrote nothing')


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def local_where():
    """Where a local run runs: its host and process."""
    return f'host {socket.gethostname()}, pid {os.getpid()}'


@dataclasses.dataclass(frozen=True)
class Lease:
    """The lease one run holds, or wants, on ``output``; pickled into the job's steps as it is.

    ``token`` is unique to this run's attempt, so its own lease (taken by the
    driver, confirmed by the job's first step) is told from any other.
    """

    output: str
    run_id: str
    started_at: str                       # ISO 8601: the run's start
    where: str                            # a host and pid, or a Dataflow job
    timeout_seconds: float = schema.DEFAULT_TIMEOUT_SECONDS
    token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self):
        if storage.is_remote(self.output) and not self.output.startswith('gs://'):
            raise ValueError(f'--output {self.output}: the lease works on local folders and gs:// only; '
                             'pass --no-lease to write there without one')

    @property
    def path(self):
        """Where the lease lives: ``OUTPUT/lease.json``."""
        return FileSystems.join(self.output, schema.FILE_NAME)

    @property
    def heartbeat_seconds(self):
        """How often the holder rewrites its heartbeat."""
        return self.timeout_seconds / schema.HEARTBEATS_PER_TIMEOUT

    def _record(self):
        return schema.dumps({schema.RUN_ID: self.run_id, schema.TOKEN: self.token, schema.STARTED_AT: self.started_at,
                             schema.HEARTBEAT_AT: _now().isoformat(), schema.WHERE: self.where,
                             schema.TIMEOUT_SECONDS: self.timeout_seconds})

    def _current(self):
        """(lease dict or None, version)."""
        data, version = storage.read_versioned(self.path)
        return (None if data is None else schema.loads(data, self.path)), version

    @staticmethod
    def _age(holder):
        return (_now() - schema.timestamp(holder, schema.HEARTBEAT_AT)).total_seconds()

    def _expired(self, holder):
        return self._age(holder) > float(holder[schema.TIMEOUT_SECONDS])

    def check(self):
        """Raises ``LeaseHeldError`` when another run holds a live lease; takes nothing."""
        holder, _ = self._current()
        if holder and holder[schema.TOKEN] != self.token and not self._expired(holder):
            raise LeaseHeldError(self.output, holder, self._age(holder))

    def acquire(self):
        """Takes the lease (or renews it, when this run holds it already); ``LeaseHeldError`` when another run does.

        A lease whose heartbeat is older than its holder's timeout is taken
        over, with a warning naming the run it belonged to.
        """
        for _ in range(10):  # every miss means another writer changed the lease: look again
            holder, version = self._current()
            if holder is None:
                if storage.create_if_absent(self.path, self._record()) is not None:
                    return
                continue
            if holder[schema.TOKEN] == self.token:
                if storage.replace_if(self.path, self._record(), version) is not None:
                    return
                continue
            age = self._age(holder)
            if age <= float(holder[schema.TIMEOUT_SECONDS]):
                raise LeaseHeldError(self.output, holder, age)
            if storage.replace_if(self.path, self._record(), version) is not None:
                _log.warning('run %s took over the lease on %s from run %s (started %s on %s), whose last heartbeat '
                             'was %.1f s ago, more than its timeout of %g s: that run is gone', self.run_id,
                             self.output, holder[schema.RUN_ID], holder[schema.STARTED_AT], holder[schema.WHERE],
                             age, float(holder[schema.TIMEOUT_SECONDS]))
                return
        raise OSError(f'{self.path} kept changing while run {self.run_id} tried to take it; try again')

    def renew(self):
        """Rewrites the heartbeat; False when the lease is no longer this run's (released, or taken over)."""
        for _ in range(3):
            holder, version = self._current()
            if holder is None:
                return False
            if holder[schema.TOKEN] != self.token:
                _log.warning('run %s lost the lease on %s to run %s (started %s on %s): its heartbeats came too late; '
                             'rows both runs write for the same photo count once in the one-row-per-photo view',
                             self.run_id, self.output, holder[schema.RUN_ID], holder[schema.STARTED_AT],
                             holder[schema.WHERE])
                return False
            if storage.replace_if(self.path, self._record(), version) is not None:
                return True
        return True  # another process of this run renewed it meanwhile

    def release(self):
        """Stops this process's heartbeat and deletes the lease if it is still this run's; returns whether it was."""
        _stop_heartbeat(self.token)
        for _ in range(3):
            holder, version = self._current()
            if holder is None or holder[schema.TOKEN] != self.token:
                return False
            if storage.delete_if(self.path, version):
                return True
        return False

    def keep_alive(self):
        """Heartbeats the lease from this process, every ``heartbeat_seconds``, until it is released or lost."""
        with _heartbeats_lock:
            running = _heartbeats.get(self.token)
            if running and running[0].is_alive():
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._beat, args=(stop,), name=f'img2txt-lease-{self.run_id}',
                                      daemon=True)
            _heartbeats[self.token] = (thread, stop)
            thread.start()

    def _beat(self, stop):
        while not stop.wait(self.heartbeat_seconds):
            try:
                if not self.renew():
                    return
            except Exception as e:  # storage hiccup: the next beat tries again, well within the timeout
                _log.warning('heartbeat of the lease on %s failed (%s: %s); trying again in %.0f s', self.output,
                             type(e).__name__, e, self.heartbeat_seconds)


# Heartbeat threads of this process: token → (thread, stop event).
_heartbeats = {}
_heartbeats_lock = threading.Lock()


def _stop_heartbeat(token):
    with _heartbeats_lock:
        running = _heartbeats.pop(token, None)
    if running:
        running[1].set()
        if running[0] is not threading.current_thread():
            running[0].join(timeout=5)


class _Acquire(beam.DoFn):
    def __init__(self, lease):
        self._lease = lease

    def process(self, element):
        self._lease.acquire()
        self._lease.keep_alive()
        return [element]


@beam.ptransform_fn
def HoldLease(pipeline, lease):  # noqa: N802 (a PTransform)
    """pipeline → one element, once the job holds ``lease``; steps that read or write the output start from it.

    Fails the job with ``LeaseHeldError`` when another run holds it.
    """
    return (pipeline
            | 'LeaseOutput' >> beam.Create([lease.output])
            | 'AcquireLease' >> beam.ParDo(_Acquire(lease)))


class KeepAlive(beam.DoFn):
    """Passes elements through; each worker process that runs it heartbeats the lease while it lives."""

    def __init__(self, lease):
        self._lease = lease

    def setup(self):
        self._lease.keep_alive()

    def process(self, element):
        return [element]


class Release(beam.DoFn):
    """Releases the lease when its input arrives: the job's last step."""

    def __init__(self, lease):
        self._lease = lease

    def process(self, element):
        self._lease.release()
        return [element]
