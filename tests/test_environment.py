"""What the suite runs on: exactly the lock (what CI tests is what a new user installs), and every test, no skips."""
import importlib.metadata
import re
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[1] / 'requirements.lock'


def normalized(name):
    """A distribution name as PEP 503 compares them."""
    return re.sub(r'[-_.]+', '-', name).lower()


def locked():
    """{name: version} of every pin in the lock."""
    pins = re.findall(r'^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)', LOCK.read_text(), re.MULTILINE)
    return {normalized(name): version for name, version in pins}


def test_every_installed_distribution_is_the_locked_version():
    pins = locked()
    assert {'apache-beam', 'tensorflow', 'tensorflow-transform', 'pillow', 'pip', 'pytest'} <= set(pins)
    installed = {normalized(d.metadata['Name']): d.version for d in importlib.metadata.distributions()}
    assert installed.pop('img2txt') == '0.1.0'
    differ = {name: (version, pins.get(name)) for name, version in installed.items() if pins.get(name) != version}
    assert not differ, f'installed (version, locked version) outside the lock: {differ}; rebuild with make clean install'
    assert not set(pins) - set(installed), f'locked but not installed: {sorted(set(pins) - set(installed))}'


def test_a_run_that_skips_a_test_fails_and_says_why(pytester):
    pytester.makeconftest((Path(__file__).parent / 'conftest.py').read_text())
    pytester.makepyfile(test_probe='''
        import pytest

        def test_runs():
            pass

        def test_needs_a_tool():
            pytest.skip('no frobnicator on PATH')
        ''')
    result = pytester.runpytest_subprocess('-p', 'no:xdist', '-rs')
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(['FAILED: 1 test(s) skipped*a skip fails the run', '*no frobnicator on PATH',
                                 '*1 passed, 1 skipped*'])
