"""The environment under test is exactly the lock: what CI tests is what a new user installs."""
import importlib.metadata
import re
from pathlib import Path

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
