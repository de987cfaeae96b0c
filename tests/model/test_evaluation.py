"""Caption metrics against hand-checkable cases, and against pycocoevalcap run directly."""
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

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


CANDIDATES = {1: 'a red circle to the left of a blue square', 2: 'a small green triangle',
              3: 'a yellow cross in the picture'}
# pycocoevalcap's own input: lower-case words without punctuation, as its PTB tokenizer gives them.
GTS = {1: ['a red square to the left of a blue circle', 'a blue circle to the right of a red square'],
       2: ['a small green triangle', 'there is a small green triangle'],
       3: ['a large yellow cross', 'one large yellow cross in the picture']}
RES = {i: [c] for i, c in CANDIDATES.items()}


def test_bleu_rouge_cider_equal_pycocoevalcap_run_directly():
    # No Java needed for these: this parity check runs everywhere.
    scores, per_image = evaluation.score(CANDIDATES, REFERENCES, meteor=False)
    bleu, _ = Bleu(4).compute_score(GTS, RES, verbose=0)
    cider, cider_images = Cider().compute_score(GTS, RES)
    assert [scores[f'BLEU-{n}'] for n in range(1, 5)] == pytest.approx(bleu, abs=1e-12)
    assert scores['ROUGE-L'] == pytest.approx(Rouge().compute_score(GTS, RES)[0], abs=1e-12)
    assert scores['CIDEr-D'] == pytest.approx(cider, abs=1e-12)
    assert [per_image[i] for i in (1, 2, 3)] == pytest.approx(list(cider_images), abs=1e-12)


def needs_java():
    assert evaluation.java_available(), ("java not on PATH: METEOR and the PTB tokenizer run Java "
                                         "(make test installs Debian's default-jre-headless)")


def test_meteor_equals_pycocoevalcap_run_directly():
    needs_java()
    scores, _ = evaluation.score(CANDIDATES, REFERENCES)
    assert scores['METEOR'] == pytest.approx(Meteor().compute_score(GTS, RES)[0], abs=1e-9)
    assert 0 < scores['METEOR'] < 1


def test_captions_are_tokenized_as_the_ptb_tokenizer_does():
    # Flickr8k's and COCO's captions, with their punctuation, case and contractions. (Brackets differ:
    # PTB keeps them as -lrb- and -rrb- tokens, ours drops them; model.evaluation says so.)
    captions = ['A black dog is running through the grass .', 'Two men, one in a red shirt, play soccer!',
                "A child's toy sits on the floor.", 'The girl is n\'t wearing shoes', "a dog's ball",
                'A man in a black-and-white shirt; smiling', 'people walk "outside"', 'A BIKE near a wall.']
    needs_java()
    ptb = PTBTokenizer().tokenize({i: [{'caption': c}] for i, c in enumerate(captions)})
    assert [evaluation._text(c) for c in captions] == [ptb[i][0] for i in range(len(captions))]


def test_names_all_checks_every_phrase_as_consecutive_words():
    assert evaluation.names_all('a red triangle to the left of a blue circle', ['red triangle', 'blue circle'])
    assert not evaluation.names_all('a red circle to the left of a blue triangle', ['red triangle', 'blue circle'])
    assert not evaluation.names_all('a red big triangle', ['red triangle'])
    assert evaluation.names_all('A Red Triangle.', ['red triangle'])
    assert evaluation.names_all('', [])
