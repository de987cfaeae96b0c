"""Reading a format needs no TensorFlow: a manifest, a caption output's schema or a lease is read in a second."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize('module', ['manifest', 'captions', 'decoders', 'evaluation', 'lease', 'training_run'])
def test_a_schema_module_imports_without_tensorflow(module):
    code = (f'import sys; import img2txt.schemas.{module}; '
            "sys.exit('tensorflow' in sys.modules and 'imports TensorFlow')")
    completed = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr or completed.stdout
