"""Caption quality: the COCO caption metrics, and whether captions name what they must.

Scores come from pycocoevalcap, the COCO caption evaluation code, so they are
comparable with published results (Show and Tell on COCO: BLEU-4 27.7, CIDEr
85.5, reported here on the 0-1 scale as 0.277 and 0.855): BLEU-1..4,
METEOR, ROUGE-L and CIDEr-D (``schemas.evaluation`` names them). Candidates
and references are tokenized with ``model.tokenizer.tokenize``, the
tokenizer the vocabulary was built with, instead of pycocoevalcap's PTB
tokenizer (which needs Java); both drop punctuation and lower-case, and give
the same words except for brackets, which PTB keeps as ``-lrb-`` and
``-rrb-`` tokens (rare in captions; a test checks the rest). METEOR
runs the jar that ships in the pycocoevalcap wheel and so needs ``java`` on
PATH; without it the score is ``schemas.evaluation.METEOR_SKIPPED``, never a
number. SPICE needs a Stanford CoreNLP download and is not computed.
"""
import shutil

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from img2txt.model.tokenizer import tokenize
from img2txt.schemas import evaluation as names


def score(candidates, references, meteor=True):
    """Corpus scores of one candidate caption per image against its references.

    Args:
      candidates: ``{image_id: caption}``.
      references: ``{image_id: [caption, ...]}`` with the same image ids.
      meteor: compute METEOR (when Java is on PATH).

    Returns:
      ``(corpus, per_image_cider)``: ``corpus`` maps each of
      ``schemas.evaluation.METRICS`` to a float on a 0-1 scale (CIDEr-D up to
      10), METEOR to ``METEOR_SKIPPED`` without Java or when not asked for;
      ``per_image_cider`` maps each image id to its CIDEr-D.

    Raises:
      ValueError: the image ids differ, or there are none.
    """
    if set(candidates) != set(references):
        missing = sorted(set(references) - set(candidates))[:3]
        extra = sorted(set(candidates) - set(references))[:3]
        raise ValueError(f'candidates and references must cover the same images (missing {missing}, extra {extra})')
    if not candidates:
        raise ValueError('nothing to score: no images')
    ids = sorted(candidates, key=str)
    res = {i: [_text(candidates[i])] for i in ids}
    gts = {i: [_text(r) for r in references[i]] for i in ids}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, per_image = Cider().compute_score(gts, res)
    corpus = {**{name: float(b) for name, b in zip(names.BLEU, bleu)},
              names.METEOR: _meteor(gts, res) if meteor else names.METEOR_SKIPPED,
              names.ROUGE_L: float(rouge), names.CIDER_D: float(cider)}
    # Cider keeps its images in the order of gts' keys.
    return corpus, {i: float(c) for i, c in zip(gts, per_image)}


def java_available():
    """Whether METEOR can run: its jar needs ``java`` on PATH."""
    return shutil.which('java') is not None


def _meteor(gts, res):
    if not java_available():
        return names.METEOR_SKIPPED
    global _meteor_scorer
    if _meteor_scorer is None:
        from pycocoevalcap.meteor.meteor import Meteor
        # A java process that loads its paraphrase tables once (seconds), then
        # serves every score of this process (training scores again and again);
        # it ends with the process.
        _meteor_scorer = Meteor()
    value, _ = _meteor_scorer.compute_score(gts, res)
    return float(value)


_meteor_scorer = None


def names_all(caption, phrases):
    """Whether ``caption`` contains every phrase, each as consecutive words (after tokenizing both)."""
    words = _tokens(caption)
    for phrase in phrases:
        wanted = _tokens(phrase)
        if not any(words[i:i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1)):
            return False
    return True


def _tokens(text):
    # An empty caption has no words rather than failing the corpus.
    try:
        return tokenize(text)
    except ValueError:
        return []


def _text(caption):
    return ' '.join(_tokens(caption))
