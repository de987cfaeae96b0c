"""Fixtures of the export tests: each module trains its own small captioner (its ``trained`` fixture)."""
import pytest

from img2txt.model.networks import encoders
from img2txt.model.serving import export


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    """(export_dir, model_id) of the module's trained model (``trained``: (model, config, vocab))."""
    model, config, vocab = trained
    export_dir = str(tmp_path_factory.mktemp('export') / 'captioner')
    return export_dir, export.export_captioner(model, config, encoders.DEFAULT, vocab, export_dir)


@pytest.fixture(scope='module')
def loaded(exported):
    """The module's export, loaded with ``tf.saved_model.load``."""
    return export.load_captioner(exported[0])
