"""The report's HTML document: its escaping, inline style sheet and script, and the Content Security Policy."""
import base64
import datetime
import hashlib
import html


def escape(value):
    """Any value as escaped HTML text (also safe inside a quoted attribute)."""
    return html.escape(str(value), quote=True)


_STYLE = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5d6675; --line: #dde1e8; --accent: #2a62c9; --val: #d9731a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1400px; padding: 16px 24px 48px; font: 14px/1.45 system-ui, sans-serif;
       color: var(--ink); background: #f6f7f9; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 18px; margin: 28px 0 8px; } h3 { font-size: 15px; }
.note, .meta, header p { color: var(--muted); margin: 4px 0 10px; }
.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
[hidden] { display: none !important; }
.filters { display: flex; flex-wrap: wrap; gap: 24px; align-items: center; }
.filters input[type=search] { width: 280px; padding: 4px 8px; font: inherit; }
.photos { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.photo { margin: 0; padding: 8px; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.photo img, .missing { display: block; width: 160px; height: 160px; margin: 0 auto 6px; border-radius: 4px; }
.missing { padding: 8px; background: #eceef2; color: var(--muted); font-size: 12px; overflow: hidden; }
.caption { font-weight: 600; margin: 0 0 2px; }
.meta { font-size: 12px; margin: 0 0 4px; }
.confidence { color: var(--accent); font-weight: 600; }
.candidates { margin: 0 0 4px; padding-left: 20px; font-size: 12px; }
.candidates .p { display: inline-block; min-width: 44px; color: var(--muted); font-variant-numeric: tabular-nums; }
.uri { margin: 0; font-size: 11px; color: var(--muted); overflow: hidden; text-overflow: ellipsis;
       white-space: nowrap; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
.chart { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
.chart .grid { stroke: var(--line); } .chart .tick { fill: var(--muted); font-size: 11px; }
.chart .line { fill: none; stroke-width: 2; } .chart .line.train { stroke: var(--accent); }
.chart .line.val { stroke: var(--val); } .chart .dot.val { fill: var(--val); }
.legend { display: flex; gap: 24px; } .swatch { display: inline-block; width: 14px; height: 3px; margin-right: 6px;
          vertical-align: middle; } .swatch.train { background: var(--accent); } .swatch.val { background: var(--val); }
.looks { display: flex; flex-direction: column; gap: 12px; }
.look { margin: 0; padding: 8px; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.tiles img { display: block; border-radius: 3px; } .tiles .crop { margin-right: 10px; }
.word { margin: 0; } .word figcaption { text-align: center; font-size: 12px; }
.look > figcaption .caption { margin: 6px 0 0; }
"""

# Filters the gallery in the page; the URL's #q=words&min=0.5 sets the first
# filter, so a link can point at a filtered view.
_SCRIPT = """
(function () {
  var q = document.getElementById('q'), min = document.getElementById('min');
  var shownValue = document.getElementById('min-value'), matching = document.getElementById('matching');
  var photos = document.querySelectorAll('#gallery .photo');
  function apply() {
    var words = q.value.toLowerCase().split(/\\s+/).filter(Boolean), least = parseFloat(min.value) || 0, count = 0;
    photos.forEach(function (photo) {
      var text = photo.dataset.text;
      var hide = parseFloat(photo.dataset.confidence) < least ||
          words.some(function (word) { return text.indexOf(word) < 0; });
      photo.hidden = hide;
      if (!hide) count++;
    });
    shownValue.textContent = least.toFixed(2);
    matching.textContent = count;
  }
  var initial = new URLSearchParams(location.hash.slice(1));
  if (initial.has('q')) q.value = initial.get('q');
  if (initial.has('min')) min.value = initial.get('min');
  q.addEventListener('input', apply);
  min.addEventListener('input', apply);
  apply();
})();
"""


def _csp_hash(text):
    """The Content Security Policy source that allows exactly this inline style or script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode('utf-8')).digest()).decode('ascii') + "'"


def document(captions_dir, summary, sections):
    """The whole document: the policy, the inline style and script, the sections."""
    # Only the inline style and script below, and data: images, may load: no
    # request leaves the page, and markup that slipped past escaping could not run.
    policy = (f"default-src 'none'; img-src data:; style-src {_csp_hash(_STYLE)}; "
              f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'")
    generated = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>img2txt report: {escape(captions_dir)}</title><style>{_STYLE}</style></head><body>'
            f'<header><h1>img2txt report</h1><p><span class="path">{escape(captions_dir)}</span> · '
            f'{escape(summary)} · generated {generated}</p></header>'
            + ''.join(sections) + f'<script>{_SCRIPT}</script></body></html>\n')
