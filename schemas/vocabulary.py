"""The vocabulary file format and its reserved tokens.

A vocabulary file is UTF-8 text, one token per line; line N (from 0) is token
id N. The first ``NUM_RESERVED`` lines are always the reserved tokens below, in
this order; the words learned from the training captions follow, most frequent
first (ties broken by the token's bytes, so the file is deterministic).
"""

PAD = '<pad>'
START = '<s>'
END = '</s>'
UNK = '<unk>'

RESERVED_TOKENS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(len(RESERVED_TOKENS))
NUM_RESERVED = len(RESERVED_TOKENS)

# File name of the plain vocabulary inside a preprocess output or an export.
VOCABULARY_FILE = 'vocab.txt'


def read(path_or_lines):
    """Returns the token list of a vocabulary file (a path) or of its lines.

    Raises ValueError if the reserved tokens are not the first lines.
    """
    if isinstance(path_or_lines, str):
        with open(path_or_lines, encoding='utf-8') as f:
            lines = f.read().splitlines()
    else:
        lines = list(path_or_lines)
    if tuple(lines[:NUM_RESERVED]) != RESERVED_TOKENS:
        raise ValueError(
            f'not an img2txt vocabulary: the first {NUM_RESERVED} lines must be '
            f'{list(RESERVED_TOKENS)}, got {lines[:NUM_RESERVED]}')
    return lines
