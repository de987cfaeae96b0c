"""The training section's inline SVG line chart."""
import math

from img2txt.jobs.report.page import escape as _e
from img2txt.schemas import training_run


def line_chart(curves, label='loss per token by step'):
    """An inline SVG line chart of ``scalar_curves``' output: each split's values against the step."""
    width, height, left, right, top, bottom = 760, 300, 64, 16, 12, 40
    points = [point for curve in curves.values() for point in curve]
    x_low, x_high, x_ticks = _axis(min(s for s, _ in points), max(s for s, _ in points), integer=True)
    y_low, y_high, y_ticks = _axis(min(v for _, v in points), max(v for _, v in points))

    def x(step):
        return left + (step - x_low) / (x_high - x_low) * (width - left - right)

    def y(loss):
        return top + (1 - (loss - y_low) / (y_high - y_low)) * (height - top - bottom)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(label)}">']
    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in x_ticks:
        parts.append(f'<text class="tick" x="{x(tick):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                     f'{tick:,.0f}</text>')
    parts.append(f'<text class="tick" x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
                 'text-anchor="middle">step</text>')
    for split, curve in curves.items():
        if not curve:
            continue
        path = ' '.join(f'{x(s):.1f},{y(v):.1f}' for s, v in curve)
        parts.append(f'<polyline class="line {split}" points="{path}"/>')
        if split == training_run.VALIDATION_LOGS:  # Few and far between: mark each.
            parts.extend(f'<circle class="dot {split}" cx="{x(s):.1f}" cy="{y(v):.1f}" r="3"/>' for s, v in curve)
    parts.append('</svg>')
    return ''.join(parts)


def _axis(low, high, count=5, integer=False):
    """(start, end, ticks) of an axis over [low, high]: about ``count`` steps of 1, 2 or 5 times a power of ten.

    The axis starts and ends on a tick, so both ends are labelled.
    """
    if low == high:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(step, 1)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return first * step, last * step, [i * step for i in range(first, last + 1)]
