"""Caption quality: the standard COCO metrics, BLEU-1..4 and CIDEr-D.

Scores come from pycocoevalcap, the COCO caption evaluation code, so they are
comparable with published results (Show and Tell on COCO: BLEU-4 27.7, CIDEr
85.5, reported here on the 0-1 scale as 0.277 and 0.855). Candidates and
references are tokenized with ``model.tokenizer.tokenize``, the tokenizer the
vocabulary was built with, instead of pycocoevalcap's PTB tokenizer (which
needs Java); both drop punctuation and lower-case. METEOR and SPICE need Java
and are not computed.
"""
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from img2txt.model.tokenizer import tokenize


def score(candidates, references):
    """Corpus scores of one candidate caption per image against its references.

    Args:
      candidates: ``{image_id: caption}``.
      references: ``{image_id: [caption, ...]}`` with the same image ids.

    Returns:
      ``{'BLEU-1': ..., 'BLEU-2': ..., 'BLEU-3': ..., 'BLEU-4': ..., 'CIDEr-D': ...}``, floats on a 0-1
      scale (CIDEr-D up to 10).

    Raises:
      ValueError: the image ids differ, or there are none.
    """
    if set(candidates) != set(references):
        missing = sorted(set(references) - set(candidates))[:3]
        extra = sorted(set(candidates) - set(references))[:3]
        raise ValueError(f'candidates and references must cover the same images (missing {missing}, extra {extra})')
    if not candidates:
        raise ValueError('nothing to score: no images')
    res = {i: [_text(candidates[i])] for i in candidates}
    gts = {i: [_text(r) for r in references[i]] for i in candidates}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {**{f'BLEU-{n}': float(b) for n, b in enumerate(bleu, start=1)}, 'CIDEr-D': float(cider)}


def _text(caption):
    # An empty candidate scores zero rather than failing the corpus.
    try:
        return ' '.join(tokenize(caption))
    except ValueError:
        return ''
