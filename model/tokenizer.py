"""Caption tokenizer: one function for training captions and evaluation references.

``tokenize`` normalises a caption (Unicode NFKC, typographic quotes to ASCII,
lower case, whitespace collapsed), splits it with NLTK's ``word_tokenize``
(``preserve_line=True``, so no punkt model and no downloaded data are needed)
and drops punctuation tokens.

Why punctuation is dropped, sentence-final '.' included: im2txt keeps the
'.', but nearly every caption ends with one, so a model learns it for free and BLEU
on references that keep it rewards a token that says nothing about the image.
The COCO caption evaluation (pycocoevalcap's PTB tokenizer) and the Karpathy
split's ``tokens`` both strip punctuation, so dropping it here keeps our
scores comparable to published ones. Tokens that are only punctuation (see
``PUNCTUATION``) go; tokens that carry a word survive: "t-shirt", "'s",
"n't". Symbols that read as words ("&", "%", "$", "#") stay.

A period that ends a word goes too, wherever it is. Without sentence
splitting NLTK splits off only the caption's last period, so "A dog. It runs."
would give "dog." beside "dog"; abbreviations lose their last period the same
way everywhere ("mr", "u.s"), so one word is always one token.

The same function must tokenize training captions and evaluation references,
or scores compare different token streams.
"""
import re
import unicodedata

from nltk.tokenize import word_tokenize

# Characters that make up punctuation-only tokens (",", ".", "...", "--",
# "``", "''", "(", ...); a token made only of these is dropped.
PUNCTUATION = '.,;:!?\'"`()[]{}-\u00ab\u00bb\u2012\u2013\u2014\u2015'

# NFKC leaves typographic quotes alone, and NLTK splits "dog’s" into
# "dog", "’", "s" where it splits "dog's" into "dog", "'s".
_ASCII_QUOTES = str.maketrans({
    '\u2018': "'", '\u2019': "'", '\u201a': "'", '\u201b': "'",
    '\u201c': '"', '\u201d': '"', '\u201e': '"', '\u201f': '"',
})

# Most captions are lower-case ASCII words and commas with at most a final
# period. For those NLTK's rules come down to splitting off the period and
# every comma not followed by a digit ("1,000" stays one token), then
# str.split(); skipping NLTK for them is 30-50x faster. The exceptions go to
# NLTK: the words its contraction rules split ("cannot" -> "can", "not") and
# runs of commas, which its comma rule splits unevenly.
# tests/model/test_tokenizer.py checks the equivalence on generated captions.
_SIMPLE = re.compile(r'[a-z0-9 ,]+\.?')
_NEEDS_NLTK = re.compile(r'\b(?:cannot|gimme|gonna|gotta|lemme|wanna)\b|,,')
_SPLIT_COMMA = re.compile(r',(?!\d)')


class EmptyCaptionError(ValueError):
    """A caption that has no tokens: empty, whitespace or only punctuation."""


def tokenize(caption: str, max_length: int | None = None) -> list[str]:
    """Returns the lower-case word tokens of ``caption``, at most ``max_length``.

    Raises:
      TypeError: ``caption`` is not a string.
      ValueError: ``max_length`` is not a positive integer or None.
      EmptyCaptionError: no tokens are left after dropping punctuation.
    """
    if not isinstance(caption, str):
        raise TypeError(f'caption must be a str, got {type(caption).__name__}')
    if max_length is not None and max_length < 1:
        raise ValueError(f'max_length must be positive or None, got {max_length}')
    text = caption
    if not text.isascii():
        text = unicodedata.normalize('NFKC', text).translate(_ASCII_QUOTES)
    text = ' '.join(text.lower().split())
    if _SIMPLE.fullmatch(text) and not _NEEDS_NLTK.search(text):
        tokens = _SPLIT_COMMA.sub(' ', text.rstrip('.')).split()
    else:
        words = (token.rstrip('.') for token in word_tokenize(text, preserve_line=True))
        tokens = [word for word in words if word.strip(PUNCTUATION)]
    if not tokens:
        shown = caption if len(caption) <= 80 else caption[:77] + '...'
        raise EmptyCaptionError(f'caption has no words: {shown!r}')
    return tokens[:max_length]
