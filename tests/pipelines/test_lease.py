"""The lease on a caption output, on local folders and on gs:// (the GCS emulator): one holder at a time."""
import datetime
import json
import threading
import time

import pytest

from img2txt.model import storage
from img2txt.pipelines import lease as lease_lib
from img2txt.schemas import lease as schema

STARTED = '2026-12-07T02:30:00+00:00'


def lease(output, run_id, timeout=60.0):
    return lease_lib.Lease(str(output), run_id, STARTED, f'test host, run {run_id}', timeout)


def held_by(output):
    data, _ = storage.read_versioned(f'{output}/{schema.FILE_NAME}')
    return None if data is None else json.loads(data)[schema.RUN_ID]


def race(output, tries):
    """Two runs acquire the lease of a fresh output at the same moment, ``tries`` times: who won each time."""
    outcomes = []
    for i in range(tries):
        target = f'{output}/try-{i}'
        contenders = [lease(target, 'left'), lease(target, 'right')]
        start = threading.Barrier(len(contenders))
        results = {}

        def contend(contender):
            start.wait()
            try:
                contender.acquire()
                results[contender.run_id] = 'won'
            except lease_lib.LeaseHeldError as e:
                results[contender.run_id] = e.holder[schema.RUN_ID]

        threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outcomes.append((results, held_by(target)))
    return outcomes


def assert_one_winner_each_time(outcomes):
    for results, holder in outcomes:
        winners = [run for run, result in results.items() if result == 'won']
        assert len(winners) == 1, results
        loser = 'left' if winners == ['right'] else 'right'
        assert results[loser] == winners[0] and holder == winners[0]  # the loser names the winner


def test_two_runs_racing_for_a_local_output_one_wins(tmp_path):
    assert_one_winner_each_time(race(tmp_path, 20))


def test_two_runs_racing_for_a_gcs_output_one_wins(gcs, gcs_bucket):
    assert_one_winner_each_time(race(f'gs://{gcs_bucket}/captions', 20))


@pytest.mark.parametrize('where', ['local', 'gcs'])
def test_a_held_lease_refuses_others_until_released(where, tmp_path, request):
    output = str(tmp_path) if where == 'local' else f'gs://{request.getfixturevalue("gcs_bucket")}/out'
    first, second = lease(output, 'first'), lease(output, 'second')
    first.acquire()
    first.acquire()  # its own lease: taken again (the job's first step after the driver took it)
    with pytest.raises(lease_lib.LeaseHeldError) as refused:
        second.acquire()
    message = str(refused.value)
    assert message.startswith(f'{output} is leased by run first, started {STARTED} on test host, run first ')
    with pytest.raises(lease_lib.LeaseHeldError):
        second.check()
    assert first.renew() and held_by(output) == 'first'
    assert first.release() and held_by(output) is None
    assert not first.release() and not first.renew()
    second.acquire()
    assert held_by(output) == 'second'
    assert not first.release() and held_by(output) == 'second'  # a released run never deletes a later lease


@pytest.mark.parametrize('where', ['local', 'gcs'])
def test_a_stale_lease_is_taken_over_and_the_takeover_logged(where, tmp_path, request, caplog):
    output = str(tmp_path) if where == 'local' else f'gs://{request.getfixturevalue("gcs_bucket")}/out'
    killed = lease(output, 'killed', timeout=30)
    killed.acquire()
    # Its last heartbeat, 31 s ago: the run died without releasing.
    data, version = storage.read_versioned(killed.path)
    record = json.loads(data)
    record[schema.HEARTBEAT_AT] = (datetime.datetime.now(datetime.timezone.utc)
                                   - datetime.timedelta(seconds=31)).isoformat()
    assert storage.replace_if(killed.path, schema.dumps(record), version) is not None
    nightly = lease(output, 'nightly')
    with caplog.at_level('WARNING', logger='img2txt'):
        nightly.acquire()
    assert held_by(output) == 'nightly'
    [warning] = [r.getMessage() for r in caplog.records if 'took over' in r.getMessage()]
    assert warning.startswith(f'run nightly took over the lease on {output} from run killed (started {STARTED} on '
                              'test host, run killed), whose last heartbeat was 31.')
    assert not killed.renew() and held_by(output) == 'nightly'  # the old holder, were it alive, lets go


def test_heartbeats_keep_a_working_run_s_lease_alive(tmp_path):
    worker = lease(tmp_path, 'long', timeout=1.0)
    worker.acquire()
    worker.keep_alive()
    try:
        time.sleep(2.5)  # more than twice the timeout: only heartbeats keep it
        with pytest.raises(lease_lib.LeaseHeldError):
            lease(tmp_path, 'next').acquire()
    finally:
        assert worker.release()
    lease(tmp_path, 'next').acquire()


def test_a_lease_that_is_not_one_is_named(tmp_path):
    (tmp_path / schema.FILE_NAME).write_text('{"run_id": "x"')
    with pytest.raises(ValueError, match=f'^{tmp_path / schema.FILE_NAME} is not an img2txt lease'):
        lease(tmp_path, 'run').acquire()


def test_outputs_without_atomic_writes_need_no_lease():
    with pytest.raises(ValueError, match='--output s3://bucket/out: the lease works on local folders and gs:// only; '
                                         'pass --no-lease'):
        lease('s3://bucket/out', 'run')
