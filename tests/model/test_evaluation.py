"""Caption metrics against hand-checkable cases."""
import pytest

from img2txt.model import evaluation

REFERENCES = {
    1: ['A red square to the left of a blue circle.', 'a blue circle to the right of a red square'],
    2: ['a small green triangle', 'there is a small green triangle'],
    3: ['a large yellow cross', 'one large yellow cross in the picture'],
}


def test_candidates_equal_to_a_reference_score_perfect_bleu():
    candidates = {i: refs[0] for i, refs in REFERENCES.items()}
    scores = evaluation.score(candidates, REFERENCES)
    assert scores['BLEU-1'] == pytest.approx(1.0) and scores['BLEU-4'] == pytest.approx(1.0)
    assert scores['CIDEr-D'] > 1.0


def test_wrong_words_lower_every_score():
    good = evaluation.score({i: refs[0] for i, refs in REFERENCES.items()}, REFERENCES)
    bad = evaluation.score({1: 'a red circle to the left of a blue square', 2: 'a small red triangle',
                            3: 'a large yellow square'}, REFERENCES)
    assert all(bad[name] < good[name] for name in good)
    assert 0 < bad['BLEU-1'] < 1


def test_punctuation_and_case_do_not_count():
    assert evaluation.score({1: 'A RED square, to the left of a blue circle!!'}, {1: REFERENCES[1]})['BLEU-4'] == \
        pytest.approx(1.0)


def test_empty_candidate_scores_zero_instead_of_failing():
    scores = evaluation.score({i: '' if i == 2 else refs[0] for i, refs in REFERENCES.items()}, REFERENCES)
    assert 0 < scores['BLEU-1'] < 1


def test_mismatched_images_are_an_error():
    with pytest.raises(ValueError, match='same images'):
        evaluation.score({1: 'a red square'}, REFERENCES)
    with pytest.raises(ValueError, match='no images'):
        evaluation.score({}, {})
