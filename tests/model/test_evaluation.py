"""Caption metrics against hand-checkable cases, and against pycocoevalcap run directly."""
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from img2txt.model import evaluation
from img2txt.schemas import evaluation as names

REFERENCES = {
    1: ['A red square to the left of a blue circle.', 'a blue circle to the right of a red square'],
    2: ['a small green triangle', 'there is a small green triangle'],
    3: ['a large yellow cross', 'one large yellow cross in the picture'],
}


def corpus(candidates, references=REFERENCES, meteor=False):
    return evaluation.score(candidates, references, meteor=meteor)[0]


def test_candidates_equal_to_a_reference_score_perfect_bleu():
    scores = corpus({i: refs[0] for i, refs in REFERENCES.items()})
    assert scores['BLEU-1'] == pytest.approx(1.0) and scores['BLEU-4'] == pytest.approx(1.0)
    assert scores['ROUGE-L'] == pytest.approx(1.0)
    assert scores['CIDEr-D'] > 1.0
    assert scores['METEOR'] == names.METEOR_SKIPPED


def test_wrong_words_lower_every_score():
    good = corpus({i: refs[0] for i, refs in REFERENCES.items()})
    bad = corpus({1: 'a red circle to the left of a blue square', 2: 'a small red triangle',
                  3: 'a large yellow square'})
    assert all(bad[name] < good[name] for name in good if name != 'METEOR')
    assert 0 < bad['BLEU-1'] < 1


def test_punctuation_and_case_do_not_count():
    assert corpus({1: 'A RED square, to the left of a blue circle!!'}, {1: REFERENCES[1]})['BLEU-4'] == \
        pytest.approx(1.0)


def test_empty_candidate_scores_zero_instead_of_failing():
    scores = corpus({i: '' if i == 2 else refs[0] for i, refs in REFERENCES.items()})
    assert 0 < scores['BLEU-1'] < 1


def test_mismatched_images_are_an_error():
    with pytest.raises(ValueError, match='same images'):
        evaluation.score({1: 'a red square'}, REFERENCES)
    with pytest.raises(ValueError, match='no images'):
        evaluation.score({}, {})


@pytest.mark.skipif(not evaluation.java_available(), reason='METEOR needs java')
def test_scores_equal_pycocoevalcap_run_directly():
    candidates = {1: 'a red circle to the left of a blue square', 2: 'a small green triangle',
                  3: 'a yellow cross in the picture'}
    scores, per_image = evaluation.score(candidates, REFERENCES)
    # pycocoevalcap's own input: lower-case words without punctuation, as its PTB tokenizer gives them.
    gts = {1: ['a red square to the left of a blue circle', 'a blue circle to the right of a red square'],
           2: ['a small green triangle', 'there is a small green triangle'],
           3: ['a large yellow cross', 'one large yellow cross in the picture']}
    res = {i: [c] for i, c in candidates.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_images = Cider().compute_score(gts, res)
    assert [scores[f'BLEU-{n}'] for n in range(1, 5)] == pytest.approx(bleu, abs=1e-12)
    assert scores['ROUGE-L'] == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-12)
    assert scores['CIDEr-D'] == pytest.approx(cider, abs=1e-12)
    assert scores['METEOR'] == pytest.approx(Meteor().compute_score(gts, res)[0], abs=1e-9)
    assert 0 < scores['METEOR'] < 1
    assert [per_image[i] for i in (1, 2, 3)] == pytest.approx(list(cider_images), abs=1e-12)


def test_names_all_checks_every_phrase_as_consecutive_words():
    assert evaluation.names_all('a red triangle to the left of a blue circle', ['red triangle', 'blue circle'])
    assert not evaluation.names_all('a red circle to the left of a blue triangle', ['red triangle', 'blue circle'])
    assert not evaluation.names_all('a red big triangle', ['red triangle'])
    assert evaluation.names_all('A Red Triangle.', ['red triangle'])
    assert evaluation.names_all('', [])
