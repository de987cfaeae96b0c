"""Repeated, interleaved measurements: how every benchmark here takes its figures.

On a shared machine one measurement can be off by half when another process
starts halfway through, and a figure taken minutes after the one it is
compared with has drifted. So the benchmarks measure alike:

- Each figure is ``repeats`` samples (at least ``REPEATS``), printed as
  ``median X (min Y, max Z)`` so the spread shows next to the figure.
- The things compared run interleaved in one process, in rounds (A, B, A,
  B, ...), so load and drift hit all of them alike; a ratio is taken round by
  round (A's i-th sample over B's i-th), and its median is the ratio printed.
- A warm-up round runs first and is discarded: tracing, allocation and
  first-call caches (the first pipeline run in a process also imports and
  builds what later runs reuse) would otherwise inflate the first sample.

A measurement is any callable with no arguments that returns one sample, a
number: ``timed(fn)`` gives seconds per call of ``fn``; a function that
reports a rate it measured itself (say, a training run's captions/s) works
as it is. Benchmarks import this module as ``measure`` (it sits beside
them)::

    samples = measure.interleave({
        'full': measure.timed(lambda: decode(data, draft=False)),
        'draft': measure.timed(lambda: decode(data), number=5),
    })
    print('draft', measure.summary(samples['draft'], scale=1000, unit=' ms'))
    print('speed-up', measure.summary(measure.ratios(samples['full'], samples['draft']), unit='x'))
"""
import statistics
import time

# Fewest samples per figure: enough for a median that one disturbed sample cannot move.
REPEATS = 5


def interleave(measurements, repeats=REPEATS, warmup=1):
    """Runs every measurement once per round, in the mapping's order, for ``warmup + repeats`` rounds.

    Args:
      measurements: name → callable taking no arguments and returning one sample (a number).
      repeats: rounds whose samples are kept; at least ``REPEATS``.
      warmup: rounds run first and discarded.

    Returns:
      name → list of ``repeats`` samples; sample i of every name comes from round i, so
      ``ratios`` can pair them.

    Raises:
      ValueError: ``repeats`` is below ``REPEATS``.
    """
    if repeats < REPEATS:
        raise ValueError(f'repeats must be at least {REPEATS} for a median and range to mean anything, got {repeats}')
    samples = {name: [] for name in measurements}
    for round_index in range(warmup + repeats):
        for name, measurement in measurements.items():
            sample = measurement()
            if round_index >= warmup:
                samples[name].append(sample)
    return samples


def timed(fn, number=1):
    """A measurement: seconds per call of ``fn``, averaged over ``number`` calls in a row.

    ``number`` > 1 is for calls so short that one timer reading would be mostly noise.
    """
    def measurement():
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    return measurement


def per_second(seconds, items=1):
    """Rates from time samples: ``items / s`` for each sample ``s`` (images/s from seconds per batch)."""
    return [items / s for s in seconds]


def ratios(numerators, denominators):
    """Round-by-round ratios of two sample lists from one ``interleave``: ``numerators[i] / denominators[i]``."""
    if len(numerators) != len(denominators):
        raise ValueError(f'ratios pair samples round by round, got {len(numerators)} and {len(denominators)} samples')
    return [n / d for n, d in zip(numerators, denominators)]


def summary(samples, digits=1, unit='', scale=1.0):
    """``'median X<unit> (min Y, max Z)'`` of ``samples``, each multiplied by ``scale`` (1000 for ms, 100 for %)."""
    values = [scale * s for s in samples]
    return (f'median {statistics.median(values):.{digits}f}{unit} '
            f'(min {min(values):.{digits}f}, max {max(values):.{digits}f})')
