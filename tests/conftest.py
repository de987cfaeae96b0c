"""Makes every test run hermetic and offline, and provides the GCS emulator.

- No network: an audit hook refuses DNS lookups and connections to anything
  but loopback with NetworkAccessError, so a stray download or cloud call
  fails at once instead of hanging or retrying (subprocesses are not covered).
- The GCS emulator answers generation preconditions (``ifGenerationMatch``)
  as GCS does, which gcp-storage-emulator itself ignores: leases rely on them.
- Google auth never probes the GCE metadata server or reads the user's gcloud
  config: Application Default Credentials are a fake user token that never
  expires. Without it every process that touches ``gs://`` first spends about
  25 s in Beam's credential retries before falling back to anonymous access.
- ``TestPipeline`` runs on ``beam_options.LOCAL_RUNNER`` instead of
  DirectRunner's Prism attempt; ``--beam-options="--direct_running_mode=
  multi_processing --direct_num_workers=2"`` runs every TestPipeline that way.
- Beam worker subprocesses (``multi_processing``) can import the test
  modules, whose functions and DoFns cloudpickle pickles by reference.
- The encoder weights cache lives in the session's temp dir, shared by xdist
  workers. NLTK_DATA is an empty dir; if NLTK was imported during collection,
  it is also NLTK's only data dir (importing NLTK here would cost every
  session 3 s).
"""
import ipaddress
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

PROJECT = 'img2txt-test'
# pytester: tests/test_environment.py runs this conftest on a probe suite.
pytest_plugins = ['pytester']

# TensorFlow and google.auth read these when imported: set before any test module imports them.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ['NO_GCE_CHECK'] = 'true'
os.environ['GOOGLE_CLOUD_PROJECT'] = PROJECT


_HOSTNAME = socket.gethostname()


def _is_local(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, '', 'localhost', _HOSTNAME):
        return True
    try:
        address = ipaddress.ip_address(host.split('%')[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class NetworkAccessError(RuntimeError):
    """Raised on any attempt to reach beyond loopback.

    Not an OSError, so HTTP clients do not take it for a transient failure and
    retry (google-cloud-storage would for two minutes).
    """


def _refuse_network(event, args):
    if event == 'socket.getaddrinfo' and not _is_local(args[0]):
        raise NetworkAccessError(f'tests are offline: lookup of {args[0]!r} refused')
    if event == 'socket.connect' and isinstance(args[1], tuple) and not _is_local(args[1][0]):
        raise NetworkAccessError(f'tests are offline: connection to {args[1]!r} refused')


sys.addaudithook(_refuse_network)


def pytest_addoption(parser):
    parser.addoption('--beam-options', default='',
                     help='Beam flags for every TestPipeline, e.g. "--direct_running_mode=multi_processing '
                          '--direct_num_workers=2" (runner: beam_options.LOCAL_RUNNER unless given)')
    parser.addoption('--training-seed', type=int, default=0,
                     help='seed of every model a test trains; tests about what training learnt must pass for any '
                          'seed (and with TF_ENABLE_ONEDNN_OPTS=0, as on another CPU)')


@pytest.fixture(scope='session')
def training_seed(pytestconfig):
    """The seed every test that trains a model starts from (``--training-seed``, default 0)."""
    return pytestconfig.getoption('--training-seed')


# Nothing in this suite may depend on the machine it runs on: a skipped test is
# a missing install step (make test installs chromium and Java), so the run fails.
_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, 'wasxfail'):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _skipped and exitstatus == 0 and not hasattr(session.config, 'workerinput'):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _skipped:
        terminalreporter.write_line(
            f'FAILED: {len(_skipped)} test(s) skipped (-rs lists why); every test must run on every '
            'machine, so a skip fails the run', red=True)


@pytest.fixture(scope='session', autouse=True)
def hermetic_environment(tmp_path_factory, pytestconfig):
    """Machine-independent caches, data, credentials and test runner for the whole session."""
    from apache_beam.testing.test_pipeline import TestPipeline

    from img2txt.pipelines.beam_options import LOCAL_RUNNER

    beam_args = shlex.split(pytestconfig.getoption('--beam-options'))
    if not any(a == '--runner' or a.startswith('--runner=') for a in beam_args):
        beam_args.append(f'--runner={LOCAL_RUNNER}')
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # shared by this session's workers; the cache writes atomically
    cache = base / 'img2txt-cache'
    cache.mkdir(exist_ok=True)
    credentials = tmp_path_factory.mktemp('gcloud') / 'application_default_credentials.json'
    credentials.write_text(json.dumps({
        'type': 'authorized_user', 'client_id': PROJECT, 'client_secret': PROJECT,
        'refresh_token': PROJECT, 'token': PROJECT, 'expiry': '2999-01-01T00:00:00Z'}))
    nltk_data = tmp_path_factory.mktemp('nltk_data')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('IMG2TXT_CACHE', str(cache))
        mp.setenv('GOOGLE_APPLICATION_CREDENTIALS', str(credentials))
        mp.setenv('CLOUDSDK_CONFIG', str(credentials.parent))
        mp.setenv('NLTK_DATA', str(nltk_data))
        if 'nltk.data' in sys.modules:  # it read NLTK_DATA on import, and appended ~/nltk_data and others
            mp.setattr(sys.modules['nltk.data'], 'path', [str(nltk_data)])
        mp.setattr(TestPipeline, 'pytest_test_pipeline_options', shlex.join(beam_args))
        tests = pytestconfig.rootpath / 'tests'
        test_dirs = [p for p in sys.path if p and Path(p).resolve().is_relative_to(tests)]
        mp.setenv('PYTHONPATH', os.pathsep.join(test_dirs + [os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
        yield


class GcsEmulator:
    """A running gcp-storage-emulator that ``STORAGE_EMULATOR_HOST`` points at."""

    def __init__(self, url):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.url = url
        self.client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())

    def bucket(self, name):
        """The bucket ``name``, created if it does not exist yet."""
        return self.client.lookup_bucket(name) or self.client.create_bucket(name)


# Runs the emulator until its stdin closes, which also happens when the test process dies.
# gcp-storage-emulator ignores GCS's generation preconditions (ifGenerationMatch), which
# a lease needs (create only if absent, replace only if unchanged); the wrapper below
# answers them as GCS documents, 412 when they do not hold. The emulator serves one
# request at a time, so each check and the write after it are atomic.
_EMULATOR_MAIN = """
import os, sys, threading
from http import HTTPStatus
from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.server import create_server

def object_name(request):
    params = request.params or {}
    if params.get('object_id'):
        return params['object_id']
    if 'name' in request.query:
        return request.query['name'][0]
    data = request.data
    return data['meta'].get('name') if isinstance(data, dict) and isinstance(data.get('meta'), dict) else None

def with_preconditions(handler):
    def checked(request, response, storage, *args, **kwargs):
        wanted = request.query.get('ifGenerationMatch')
        if wanted is not None:
            try:
                current = storage.get_file_obj(request.params['bucket_name'], object_name(request))['generation']
            except (NotFound, KeyError):
                current = '0'
            if str(current) != wanted[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                message = 'At least one of the pre-conditions you specified did not hold.'
                response.json({'error': {'code': 412, 'message': message,
                                         'errors': [{'reason': 'conditionNotMet', 'message': message}]}})
                return None
        return handler(request, response, storage, *args, **kwargs)
    return checked

emulator.HANDLERS = tuple((regex, {method: with_preconditions(handler) for method, handler in handlers.items()})
                          for regex, handlers in emulator.HANDLERS)
server = create_server('127.0.0.1', int(sys.argv[1]), in_memory=True)
threading.Thread(target=server.start, daemon=True).start()
sys.stdin.read()
os._exit(0)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _start_emulator(log, timeout=20):
    """(process, url) of an emulator answering on a free loopback port."""
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    process = subprocess.Popen([sys.executable, '-c', _EMULATOR_MAIN, str(port)],
                               stdin=subprocess.PIPE, stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + '/', timeout=1) as response:
                if response.read() == b'OK':
                    return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    return None, url


@pytest.fixture(scope='session')
def gcs(tmp_path_factory, hermetic_environment):
    """A GCS emulator for this test process (each xdist worker has its own).

    While it runs, ``STORAGE_EMULATOR_HOST`` sends google-cloud-storage and
    Beam's ``gs://`` filesystem to it, also in Beam worker subprocesses
    started afterwards. Its state lasts the session: use fresh bucket names.
    """
    log_path = tmp_path_factory.mktemp('gcs-emulator') / 'emulator.log'
    with open(log_path, 'wb') as log, pytest.MonkeyPatch.context() as mp:
        for name in ('NO_PROXY', 'no_proxy'):
            mp.setenv(name, '127.0.0.1,localhost')
        for _ in range(3):  # another process may take the free port before the emulator binds it
            process, url = _start_emulator(log)
            if process:
                break
        else:
            raise RuntimeError(f'gcp-storage-emulator did not start; see {log_path}')
        mp.setenv('STORAGE_EMULATOR_HOST', url)
        try:
            yield GcsEmulator(url)
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def gcs_bucket(gcs):
    """The name of a new, empty bucket on the emulator."""
    name = f'img2txt-{uuid.uuid4().hex[:16]}'
    gcs.bucket(name)
    return name


@pytest.fixture(scope='session')
def small_captioner(tmp_path_factory, hermetic_environment, training_seed):
    """(export_dir, model_id): ``captioner_data``'s small captioner, trained and exported once per test process."""
    from captioner_data import train_and_export
    export_dir = str(tmp_path_factory.mktemp('small-captioner') / 'export')
    return export_dir, train_and_export(export_dir, seed=training_seed)


@pytest.fixture(scope='session')
def attention_captioner(tmp_path_factory, hermetic_environment, training_seed):
    """(export_dir, model_id): as ``small_captioner``, a Show-Attend-and-Tell on the encoder's feature maps."""
    from captioner_data import train_and_export
    from img2txt.schemas import decoders as decoder_names
    export_dir = str(tmp_path_factory.mktemp('attention-captioner') / 'export')
    return export_dir, train_and_export(export_dir, seed=training_seed, decoder=decoder_names.ATTENTION)
