"""CIDEr-D of token-id captions against a fixed corpus: the reward of self-critical training.

``model.evaluation`` scores a set of captions with pycocoevalcap, whose
CIDEr-D takes its document frequencies from the references of the images it
scores. A reward needs them fixed, from the whole training split (as
self-critical.pytorch's ``CiderD`` with ``--cached_tokens``): a batch of 64
images would otherwise weigh n-grams by how rare they are in those 64.
``CiderD`` computes the same formula as pycocoevalcap's ``CiderScorer``
(tf-idf n-gram vectors for n = 1..4, clipped by the reference's, a Gaussian
penalty on the length difference with sigma 6, times 10; "length" is the
number of bigrams, as there), on word ids, and a test checks that both give
the same scores when their document frequencies are the same.

Captions are sequences of word ids. The anchors append the end token to the
candidate and to every reference (self-critical.pytorch's ``array_to_str``
keeps the 0 that ends a caption): n-grams ending a sentence then count, and a
caption that stops on "of a" loses the bigram "a <end>" its references have.
Callers do the same by passing ``END_ID`` as the last id.
"""
import collections
import math

import numpy as np

_N = 4
_SIGMA = 6.0


def _ngrams(ids):
    """``Counter`` of every n-gram (n = 1..4) of a sequence, as tuples."""
    ids = tuple(ids)
    return collections.Counter(ids[i:i + n] for n in range(1, _N + 1) for i in range(len(ids) - n + 1))


class CiderD:
    """Scores candidates against the references of their image, with the corpus's document frequencies."""

    def __init__(self, references):
        """Counts each n-gram's document frequency over ``references`` and precomputes their vectors.

        Args:
          references: ``{image_id: [caption, ...]}``, each caption a sequence
            of ids (the end token included, see above). Every image counts
            once per n-gram, however many of its captions hold it.
        """
        if not references:
            raise ValueError('CIDEr-D needs references for at least one image')
        counts = {image_id: [_ngrams(caption) for caption in captions] for image_id, captions in references.items()}
        frequency = collections.Counter(ngram for captions in counts.values()
                                        for ngram in set().union(*captions))
        self._log_frequency = {ngram: math.log(max(1.0, df)) for ngram, df in frequency.items()}
        self._log_images = math.log(float(len(references)))
        self._references = {image_id: [self._vector(c) for c in captions] for image_id, captions in counts.items()}

    @property
    def num_images(self):
        return len(self._references)

    def score(self, image_id, candidate):
        """CIDEr-D of one candidate (a sequence of ids) against ``image_id``'s references (KeyError: it has none)."""
        references = self._references.get(image_id)
        if not references:
            raise KeyError(f'no references for image {image_id!r}')
        vector, norms, length = self._vector(_ngrams(candidate))
        total = 0.0
        for ref_vector, ref_norms, ref_length in references:
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * _SIGMA ** 2))
            for n in range(_N):
                if not norms[n] or not ref_norms[n]:
                    continue
                overlap = sum(min(weight, ref_vector[n].get(ngram, 0.0)) * ref_vector[n].get(ngram, 0.0)
                              for ngram, weight in vector[n].items())
                total += overlap / (norms[n] * ref_norms[n]) * penalty
        return total / _N / len(references) * 10.0

    def scores(self, image_ids, candidates):
        """``score`` of each (image id, candidate) pair, as a float32 array."""
        return np.array([self.score(i, c) for i, c in zip(image_ids, candidates)], np.float32)

    def _vector(self, counts):
        """(per n: {n-gram: tf-idf}, per n: the vector's norm, the number of bigrams)."""
        vector = [{} for _ in range(_N)]
        norms = [0.0] * _N
        length = 0
        for ngram, count in counts.items():
            n = len(ngram) - 1
            weight = count * (self._log_images - self._log_frequency.get(ngram, 0.0))
            vector[n][ngram] = weight
            norms[n] += weight * weight
            if n == 1:
                length += count
        return vector, [math.sqrt(x) for x in norms], length
