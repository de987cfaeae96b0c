"""CIDEr-D with fixed document frequencies: pycocoevalcap's numbers, and what the end token changes."""
import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from img2txt.model.training.cider import CiderD

REFERENCES = {
    'dog': ['a brown dog runs on the grass', 'a dog running across a lawn', 'the dog plays in the park'],
    'beach': ['two people walk on the beach', 'a couple walking along the sea', 'people on a sandy beach'],
    'bike': ['a man rides a bike down a street', 'a cyclist on a city road', 'a man on a bicycle'],
    'kids': ['children play football in a field', 'kids kicking a ball on the grass', 'a group of children play'],
}
CANDIDATES = {'dog': 'a dog runs on the grass', 'beach': 'a man on the beach', 'bike': 'a man rides a bike',
              'kids': 'a dog in a field'}


def test_equals_pycocoevalcap_when_the_document_frequencies_are_the_same_images():
    _, expected = Cider().compute_score(REFERENCES, {i: [c] for i, c in CANDIDATES.items()})
    scorer = CiderD({i: [r.split() for r in refs] for i, refs in REFERENCES.items()})
    got = scorer.scores(list(CANDIDATES), [c.split() for c in CANDIDATES.values()])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[0] > got[3] > 0  # the dog caption of the dog photo beats the dog caption of the football photo


def test_document_frequencies_come_from_the_corpus_not_from_what_is_scored():
    corpus = CiderD({i: [r.split() for r in refs] for i, refs in REFERENCES.items()})
    alone = CiderD({'dog': [r.split() for r in REFERENCES['dog']]})
    candidate = 'a dog runs on the grass'.split()
    # Scored within its own image only, every n-gram is in every document: idf log(1) - log(1) = 0.
    assert alone.score('dog', candidate) == 0.0
    assert corpus.score('dog', candidate) > 1.0


def test_with_the_end_token_a_caption_that_stops_on_a_function_word_scores_less():
    end = '<end>'
    scorer = CiderD({i: [[*r.split(), end] for r in refs] for i, refs in REFERENCES.items()})
    whole = scorer.score('bike', ['a', 'man', 'rides', 'a', 'bike', end])
    dangling = scorer.score('bike', ['a', 'man', 'rides', 'a', end])
    assert whole > dangling


def test_an_image_without_references_is_an_error():
    scorer = CiderD({'dog': [['a', 'dog']]})
    with pytest.raises(KeyError, match="no references for image 'cat'"):
        scorer.score('cat', ['a', 'cat'])
    with pytest.raises(ValueError, match='at least one image'):
        CiderD({})
