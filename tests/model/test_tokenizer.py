"""Tests for the caption tokenizer."""
import random

import nltk
import pytest
from nltk.tokenize import word_tokenize

from img2txt.model.tokenizer import PUNCTUATION, EmptyCaptionError, tokenize


def test_lowercases_and_drops_punctuation_including_the_final_period():
    assert tokenize('A Man riding a horse on the beach .') == [
        'a', 'man', 'riding', 'a', 'horse', 'on', 'the', 'beach']
    assert tokenize('A man, riding a horse (on a beach).') == [
        'a', 'man', 'riding', 'a', 'horse', 'on', 'a', 'beach']
    assert tokenize('Is it "big"? Yes; very -- really!...') == [
        'is', 'it', 'big', 'yes', 'very', 'really']


def test_keeps_words_with_punctuation_inside_and_symbols():
    assert tokenize("The dog's t-shirt isn't red.") == [
        'the', 'dog', "'s", 't-shirt', 'is', "n't", 'red']
    assert tokenize('Salt & pepper, 50% off, 1,000 flags') == [
        'salt', '&', 'pepper', '50', '%', 'off', '1,000', 'flags']
    assert tokenize('I cannot go') == ['i', 'can', 'not', 'go']


def test_drops_word_final_periods_inside_the_caption_too():
    # NLTK without sentence splitting leaves "walks." and "u.s." whole.
    assert tokenize('A dog walks. It sees Mr. Smith.') == [
        'a', 'dog', 'walks', 'it', 'sees', 'mr', 'smith']
    assert tokenize('a U.S. flag') == ['a', 'u.s', 'flag']
    assert tokenize('made in the U.S.') == ['made', 'in', 'the', 'u.s']


def test_normalises_unicode_and_whitespace():
    # Full-width letters and the "fi" ligature fold under NFKC, the ellipsis
    # becomes "..." (punctuation), typographic quotes behave like ASCII ones
    # and every kind of whitespace separates words.
    assert tokenize('Ａ ﬁne dog… ') == ['a', 'fine', 'dog']
    assert tokenize('The dog’s “ball” — red') == tokenize('''The dog's "ball" -- red''') == [
        'the', 'dog', "'s", 'ball', 'red']
    assert tokenize('a\u00a0cat\t\n on   a\u2003mat') == ['a', 'cat', 'on', 'a', 'mat']


def test_truncates_to_max_length():
    assert tokenize('a b c d e.', max_length=3) == ['a', 'b', 'c']
    assert tokenize('a b, c', max_length=5) == ['a', 'b', 'c']
    with pytest.raises(ValueError, match='max_length'):
        tokenize('a b', max_length=0)


@pytest.mark.parametrize('caption', ['', '   ', '.', ' . . . ', '"--"', '\u3000\n'])
def test_raises_for_captions_without_words(caption):
    with pytest.raises(EmptyCaptionError, match='has no words'):
        tokenize(caption)


def test_empty_caption_error_is_a_value_error_and_non_strings_are_rejected():
    assert issubclass(EmptyCaptionError, ValueError)
    with pytest.raises(TypeError, match='bytes'):
        tokenize(b'a dog')


def test_shortcut_matches_nltk_on_generated_captions():
    # tokenize() skips NLTK for plain captions; it must still give exactly
    # NLTK's tokens minus punctuation. The pieces cover the shortcut's edges:
    # commas before digits and in runs, final periods, contraction words.
    pieces = ['a', 'dog', 'cannot', 'gonna', 'wanna', 'gotta', 'gimme', 'lemme', 'can',
              'not', '5', '1', '000', ',', ',,', '.', '..', "'s", ':', 'x2', 'more', "'n"]
    rng = random.Random(0)
    for _ in range(3000):
        words = [rng.choice(pieces) for _ in range(rng.randint(1, 7))]
        text = ''.join(w + rng.choice(['', ' ', ' ']) for w in words).strip()
        expected = [t.rstrip('.') for t in word_tokenize(text, preserve_line=True)
                    if t.rstrip('.').strip(PUNCTUATION)]
        if expected:
            assert tokenize(text) == expected, text
        else:
            with pytest.raises(EmptyCaptionError):
                tokenize(text)


def test_needs_no_nltk_data(monkeypatch, tmp_path):
    # Nothing may be downloaded at run time: with an empty data path any
    # lookup (e.g. of the punkt sentence model) would raise LookupError.
    monkeypatch.setattr(nltk.data, 'path', [str(tmp_path)])
    assert tokenize('Mr. Smith walks. He talks! Dr. Who?') == [
        'mr', 'smith', 'walks', 'he', 'talks', 'dr', 'who']
