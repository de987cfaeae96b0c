"""The HTML report of a real caption output, evaluation and training logs, as headless Chromium shows it."""
import base64
import html.parser
import io
import json
import math
import shutil
import subprocess
import urllib.parse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageStat

from captioner_data import CAPTIONS, encoded, photo
from img2txt.jobs import cli, report
from img2txt.jobs.report.page import document
from img2txt.model import training
from img2txt.model.serving import image_decoding
from img2txt.model.serving.captioner import Candidate, Captioner
from img2txt.model.config import TrainingConfig
from img2txt.model.input_spec import InputSpec
from img2txt.model.storage import read_bytes
from img2txt.pipelines import caption
from img2txt.schemas import captioner, captions as schema, evaluation, training_run
from training_data import random_images, write_training_data

MALICIOUS = '<img src=x onerror=alert(1)>.jpg'
# Two runs, a day apart: file name → the photo it holds.
RUNS = {
    'monday': {'coffee.jpg': 'coffee', 'chelsea.png': 'chelsea'},
    'tuesday': {MALICIOUS: 'astronaut', 'rocket ☄.jpg': 'rocket'},
}
BROKEN = 'notes.jpg'  # in tuesday's folder: not an image
REFERENCE_ATTACK = '<script>alert(2)</script> a cat'
# Chromium as the tests run it: headless, and with nothing that reaches the network.
CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--host-resolver-rules=MAP * ~NOTFOUND')
# The body's background in the report's style sheet: seen in a screenshot only if the policy let the style load.
PAGE_BACKGROUND = (0xf6, 0xf7, 0xf9)


@pytest.fixture(scope='module')
def caption_output(tmp_path_factory, small_captioner):
    """A caption output folder of two real runs of the caption pipeline, and its rows by file name."""
    root = tmp_path_factory.mktemp('report')
    export_dir, _ = small_captioner
    output = root / 'captioned'
    for run_id, photos in RUNS.items():
        folder = root / run_id
        folder.mkdir()
        for name, source in photos.items():
            (folder / name).write_bytes(encoded(photo(source), 'PNG' if name.endswith('.png') else 'JPEG'))
        if run_id == 'tuesday':
            (folder / BROKEN).write_text('remember to buy milk\n')
        caption.run_config(caption.CaptionConfig(model=export_dir, input=[str(folder / '*')], output=str(output),
                                                 batch_size=4, run_id=run_id))
    table = pq.read_table(sorted(output.glob(schema.all_parts(schema.CAPTIONS_DIR))))
    return output, {row[schema.URI].rsplit('/', 1)[1]: row for row in table.to_pylist()}


@pytest.fixture(scope='module')
def evaluation_dir(tmp_path_factory):
    """What img2txt evaluate writes, per schemas.evaluation: two subsets, METEOR skipped, hostile references."""
    folder = tmp_path_factory.mktemp('evaluation')
    scores = {name: 0.1 * i for i, name in enumerate(evaluation.METRICS, 1)}
    subsets = {evaluation.ALL: {evaluation.IMAGES_COUNT: 2, **scores, evaluation.METEOR: evaluation.METEOR_SKIPPED,
                                evaluation.MENTIONS_RIGHT: 0.5},
               'held_out': {evaluation.IMAGES_COUNT: 1, **scores, evaluation.CIDER_D: 0.25,
                            evaluation.METEOR: evaluation.METEOR_SKIPPED, evaluation.MENTIONS_RIGHT: 0.0}}
    (folder / evaluation.METRICS_FILE).write_text(json.dumps({
        evaluation.MODEL: 'runs/1/export/40', evaluation.MODEL_ID: 'show_and_tell@0123456789ab',
        evaluation.SPLIT: 'test', evaluation.DATA: {'data': 'scenes/'}, evaluation.SUBSETS: subsets}))
    rows = [{evaluation.IMAGE_ID: 'cat', evaluation.IMAGE_PATH: 'images/cat.jpg', evaluation.SUBSET: 'held_out',
             evaluation.CAPTION: 'a dog on a sofa', evaluation.REFERENCES: [REFERENCE_ATTACK, 'a cat on a sofa'],
             evaluation.IMAGE_CIDER_D: 0.25, evaluation.MENTIONS: ['cat'], evaluation.NAMES_MENTIONS: False},
            {evaluation.IMAGE_ID: 'cup', evaluation.IMAGE_PATH: 'images/cup.jpg', evaluation.SUBSET: 'seen',
             evaluation.CAPTION: 'a cup of coffee', evaluation.REFERENCES: ['a cup of coffee'],
             evaluation.IMAGE_CIDER_D: 3.5, evaluation.MENTIONS: ['cup'], evaluation.NAMES_MENTIONS: True}]
    pq.write_table(pa.Table.from_pylist(rows, schema=evaluation.IMAGES_SCHEMA), folder / evaluation.IMAGES_FILE)
    return folder


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    """(model dir, TrainResult) of a short real training run: loss logged every 5 steps, validated every 10,
    val captions scored every 15."""
    root = tmp_path_factory.mktemp('training')
    images = random_images(8, 1, feature_dim=16)
    data = write_training_data(root / 'data', {'train': images, 'val': images})
    config = TrainingConfig(batch_size=8, optimizer='adam', learning_rate=0.01, num_epochs=30, log_every_steps=5,
                            validation_every_steps=10, checkpoint_every_steps=1000, caption_validation_every_steps=15)
    result = training.train(data, str(root / 'model'), dict(embedding_size=16, lstm_units=16), config,
                            export=False, log=lambda line: None)
    return str(root / 'model'), result


@pytest.fixture(scope='module')
def page(caption_output, evaluation_dir, model_dir, tmp_path_factory):
    """(path, text) of the full report."""
    text = report.render(str(caption_output[0]), str(evaluation_dir), model_dir[0])
    path = tmp_path_factory.mktemp('page') / 'report.html'
    path.write_text(text, encoding='utf-8')
    return path, text


def model_dir_with(model_dir, destination, exports):
    """A copy of the training fixture's model dir with ``exports`` ({step: export dir}) under export/STEP."""
    shutil.copytree(model_dir, destination)
    for step, export_dir in exports.items():
        shutil.copytree(export_dir, destination / training_run.EXPORT_DIR / str(step))
    return destination


@pytest.fixture(scope='module')
def attention_model_dir(model_dir, attention_captioner, small_captioner, tmp_path_factory):
    """A model dir whose latest export (step 30) is the attention captioner.

    Beside it a Show and Tell at step 7 (later as text, earlier as a number)
    and an unfinished export at step 400 (no saved_model.pb yet).
    """
    directory = model_dir_with(model_dir[0], tmp_path_factory.mktemp('attention') / 'model',
                               {30: attention_captioner[0], 7: small_captioner[0]})
    unfinished = directory / training_run.EXPORT_DIR / '400'
    unfinished.mkdir()
    shutil.copy(directory / training_run.EXPORT_DIR / '30' / captioner.CONFIG_FILE, unfinished)
    return directory


@pytest.fixture(scope='module')
def attention_page(caption_output, attention_model_dir, tmp_path_factory):
    """(path, text) of the report with three photos' heat maps."""
    text = report.render(str(caption_output[0]), model_dir=str(attention_model_dir), attention_images=3)
    path = tmp_path_factory.mktemp('attention-page') / 'report.html'
    path.write_text(text, encoding='utf-8')
    return path, text


def decoded(source):
    """The pixels of a JPEG ``data:`` URI, float [H, W, 3]."""
    prefix = 'data:image/jpeg;base64,'
    assert source.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source[len(prefix):]))).convert('RGB'), np.float64)


def looks(dom):
    """[(file name, caption, crop pixels, [(word, tile pixels)])] of the heat map section's figures, in order."""
    return [(figure.find('p', 'uri').text(), figure.find('p', 'caption').text(),
             decoded(figure.find('img', 'crop').attrs['src']),
             [(word.find('figcaption').text(), decoded(word.find('img').attrs['src']))
              for word in figure.find_all('figure', 'word')])
            for figure in dom.by_id('attention').find_all('figure', 'look')]


def cell_levels(tile, crop, grid):
    """How bright ``tile`` is against ``crop`` over each cell of a ``grid`` (H, W): the dimming the page drew."""
    tile, crop = tile.sum(axis=-1), crop.sum(axis=-1)
    return np.array([[tile_block.sum() / max(crop_block.sum(), 1.0)
                      for tile_block, crop_block in zip(np.array_split(tile_rows, grid[1], axis=1),
                                                        np.array_split(crop_rows, grid[1], axis=1))]
                     for tile_rows, crop_rows in zip(np.array_split(tile, grid[0]), np.array_split(crop, grid[0]))])


def assert_self_contained(dom, images):
    """The page links nothing, its ``images`` images are inline JPEGs and its policy allows only those."""
    assert not list(dom.find_all('link'))
    sources = [node.attrs['src'] for node in dom.find_all() if 'src' in node.attrs]
    assert len(sources) == images and all(source.startswith('data:image/jpeg;base64,') for source in sources)
    [policy] = [m.attrs['content'] for m in dom.find_all('meta') if m.attrs.get('http-equiv') ==
                'Content-Security-Policy']
    assert policy.startswith("default-src 'none'; img-src data:;")


def chromium(tmp_path, *args):
    """Runs headless Chromium with a fresh profile; returns its stdout."""
    binary = shutil.which('chromium')
    if binary is None:
        pytest.fail("chromium not found on PATH: the report tests render pages in Debian's chromium package "
                    "(apt-get install -y chromium; make test installs it)")
    profile = tmp_path / f'chromium-profile-{len(list(tmp_path.glob("chromium-profile-*")))}'
    result = subprocess.run([binary, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


class Node:
    """An element of a parsed page."""

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return ''.join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self):
        return (self.attrs.get('class') or '').split()

    def find_all(self, tag=None, css_class=None):
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and (css_class is None or css_class in child.classes()):
                    yield child
                yield from child.find_all(tag, css_class)

    def find(self, tag=None, css_class=None):
        return next(self.find_all(tag, css_class))

    def by_id(self, element_id):
        return next(node for node in self.find_all() if node.attrs.get('id') == element_id)


class _TreeBuilder(html.parser.HTMLParser):
    VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr'}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node('#document', {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(text):
    builder = _TreeBuilder()
    builder.feed(text)
    return builder.root


def dump_dom(page_path, tmp_path, fragment=''):
    """The page's DOM after its script ran, as Chromium serialises it."""
    return parse(chromium(tmp_path, '--dump-dom', page_path.as_uri() + fragment))


def gallery(dom):
    """{file name: (best caption, hidden)} of the gallery's figures."""
    return {figure.find('p', 'uri').text(): (figure.find('p', 'caption').text(), 'hidden' in figure.attrs)
            for figure in dom.by_id('gallery').find_all('figure', 'photo')}


def matches(row, query, least):
    """The filter the page promises: every word of the query in the file name or a candidate, and the confidence."""
    text = ' '.join([row[schema.URI], *(c[schema.CAPTION] for c in row[schema.CANDIDATES])]).lower()
    return row[schema.CONFIDENCE] >= least and all(word in text for word in query.lower().split())


def test_page_fetches_nothing(page):
    _, text = page
    assert 'http://' not in text and 'https://' not in text
    dom = parse(text)
    assert_self_contained(dom, 4)
    assert all(not s.attrs for s in dom.find_all('script'))


def test_gallery_in_chromium_shows_the_captions_and_the_hostile_name_as_text(page, caption_output, tmp_path):
    path, _ = page
    _, rows = caption_output
    dom = dump_dom(path, tmp_path)
    shown = gallery(dom)
    assert shown == {name: (CAPTIONS[source], False) for photos in RUNS.values() for name, source in photos.items()}
    # The name is text: nothing in the DOM has an onerror handler or an image but the thumbnails.
    assert not [node for node in dom.find_all() if any(name.startswith('on') for name in node.attrs)]
    assert all(img.attrs['src'].startswith('data:image/jpeg;') for img in dom.find_all('img'))
    figure = next(f for f in dom.find_all('figure', 'photo') if f.find('p', 'uri').text() == MALICIOUS)
    assert figure.find('p', 'uri').attrs['title'].endswith('/' + MALICIOUS)
    # Candidates with their probabilities, best first, and the confidence.
    for figure in dom.find_all('figure', 'photo'):
        row = rows[figure.find('p', 'uri').text()]
        items = [li.text().split(' ', 1) for li in figure.find('ol', 'candidates').find_all('li')]
        assert [caption for _, caption in items] == [c[schema.CAPTION] for c in row[schema.CANDIDATES]]
        for (probability, _), candidate in zip(items, row[schema.CANDIDATES]):
            assert float(probability) == pytest.approx(math.exp(candidate[schema.LOG_PROB]), rel=5e-3)
        assert figure.find('span', 'confidence').text() == f'{row[schema.CONFIDENCE]:.3f}'
    assert '4 of 4 captioned images shown' in dom.by_id('gallery').text()
    assert dom.by_id('matching').text() == '4'


def test_filters_from_the_url_hide_what_does_not_match(page, caption_output, tmp_path):
    path, _ = page
    _, rows = caption_output
    dom = dump_dom(path, tmp_path, '#q=coffee&min=0.5')
    expected = {name for name, row in rows.items() if matches(row, 'coffee', 0.5)}
    assert 'coffee.jpg' in expected and MALICIOUS not in expected
    assert {name for name, (_, hidden) in gallery(dom).items() if not hidden} == expected
    assert dom.by_id('matching').text() == str(len(expected))
    assert dom.by_id('min-value').text() == '0.50'

    # A threshold between the photos' confidences keeps exactly those above it.
    confidences = sorted(row[schema.CONFIDENCE] for row in rows.values())
    assert confidences[2] - confidences[1] > 1e-5, 'the threshold needs confidences that differ'
    least = (confidences[1] + confidences[2]) / 2
    dom = dump_dom(path, tmp_path, '#' + urllib.parse.urlencode({'min': f'{least:.7f}'}))
    visible = {name for name, (_, hidden) in gallery(dom).items() if not hidden}
    assert visible == {name for name, row in rows.items() if matches(row, '', least)} and len(visible) == 2


def test_errors_runs_evaluation_and_training_sections(page, model_dir, tmp_path):
    path, _ = page
    dom = dump_dom(path, tmp_path)
    [error] = [[td.text() for td in tr.find_all('td')] for tr in dom.by_id('errors').find('tbody').find_all('tr')]
    assert error[0].endswith('/' + BROKEN) and error[1:3] == ['decode', 'NotAnImageError']
    assert error[3].startswith('not an image') and error[4] == 'tuesday'

    runs = [[td.text() for td in tr.find_all('td')] for tr in dom.by_id('runs').find('tbody').find_all('tr')]
    header = [th.text() for th in dom.by_id('runs').find_all('th')]
    assert [run[0] for run in runs] == ['tuesday', 'monday']  # newest first
    counts = {run[0]: dict(zip(header, run)) for run in runs}
    assert {k: counts['tuesday'][k] for k in ('matched', 'captioned', 'failed')} == {
        'matched': '3', 'captioned': '2', 'failed': '1'}
    assert float(counts['monday']['images/s']) > 0 and counts['monday']['model id'].startswith('show_and_tell@')

    metrics = dom.by_id('evaluation').find('table', 'metrics')
    header = [th.text() for th in metrics.find_all('th')]
    table = {row[0]: dict(zip(header, row)) for row in
             ([td.text() for td in tr.find_all('td')] for tr in metrics.find('tbody').find_all('tr'))}
    assert list(table) == [evaluation.ALL, 'held_out']
    assert table[evaluation.ALL][evaluation.METEOR] == evaluation.METEOR_SKIPPED
    assert table['held_out'][evaluation.CIDER_D] == '0.250' and table[evaluation.ALL]['BLEU-4'] == '0.400'
    assert table['held_out'][evaluation.MENTIONS_RIGHT] == '0.000'
    worst = dom.by_id('evaluation').find('table', 'worst').find('tbody').find('tr')
    assert REFERENCE_ATTACK in worst.text()  # as text, not a script
    assert len(list(dom.find_all('script'))) == 1

    chart = dom.by_id('training').find('svg')
    train = chart.find('polyline', training_run.TRAIN_LOGS).attrs['points'].split()
    assert len(train) == 30 // 5 and len(list(chart.find_all('circle', training_run.VALIDATION_LOGS))) == 30 // 10
    assert f'validation loss: {model_dir[1].val_loss:.4f} at step 30' in dom.by_id('training').text()
    # Caption validation's curve, and the step of the checkpoint it kept.
    [_, quality] = dom.by_id('training').find_all('svg')
    assert quality.attrs['aria-label'] == 'val CIDEr-D by step'
    assert len(list(quality.find_all('circle', training_run.VALIDATION_LOGS))) == 30 // 15
    best = model_dir[1]
    assert (f'best {best.best_metrics[evaluation.CIDER_D]:.4f} at step {best.best_step}'
            in dom.by_id('caption-quality').text())


def test_screenshot_is_a_styled_page(page, tmp_path):
    path, _ = page
    screenshot = tmp_path / 'report.png'
    chromium(tmp_path, f'--screenshot={screenshot}', '--window-size=1280,1600', '--hide-scrollbars', path.as_uri())
    image = Image.open(screenshot).convert('RGB')
    assert image.size == (1280, 1600)
    assert image.getpixel((2, 2)) == PAGE_BACKGROUND  # the inline style sheet passed the page's policy
    assert ImageStat.Stat(image.convert('L')).var[0] > 300  # thumbnails and text, not a blank page


def test_loss_curves_are_the_logged_losses(model_dir):
    directory, result = model_dir
    curves, _, _ = report.training_curves(directory)
    assert [step for step, _ in curves[training_run.TRAIN_LOGS]] == [5, 10, 15, 20, 25, 30]
    assert [step for step, _ in curves[training_run.VALIDATION_LOGS]] == [10, 20, 30]
    assert curves[training_run.TRAIN_LOGS][-1][1] == pytest.approx(result.train_loss, rel=1e-6)
    assert curves[training_run.VALIDATION_LOGS][-1][1] == pytest.approx(result.val_loss, rel=1e-6)
    assert curves[training_run.TRAIN_LOGS][-1][1] < curves[training_run.TRAIN_LOGS][0][1]


def test_gallery_and_errors_are_capped_newest_run_first(caption_output):
    dom = parse(report.render(str(caption_output[0]), max_images=2, max_errors=0))
    assert sorted(gallery(dom)) == sorted(RUNS['tuesday'])
    assert '2 of 4 captioned images shown, newest run first' in dom.by_id('gallery').text()
    assert '0 of 1 errors shown' in dom.by_id('errors').text()
    assert [section.attrs['id'] for section in dom.find_all('section')] == ['gallery', 'errors', 'runs']


def test_a_moved_photo_keeps_its_caption_without_a_thumbnail(caption_output, tmp_path):
    output = tmp_path / 'copy'
    shutil.copytree(caption_output[0], output)
    table = pq.read_table(sorted(output.glob(schema.all_parts(schema.CAPTIONS_DIR))), schema=schema.CAPTIONS_SCHEMA)
    for part in output.glob(schema.all_parts(schema.CAPTIONS_DIR)):
        part.unlink()
    uris = [str(tmp_path / 'gone' / uri.rsplit('/', 1)[1]) for uri in table.column(schema.URI).to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index(schema.URI), schema.URI, pa.array(uris)),
                   output / schema.partition(schema.CAPTIONS_DIR, 'monday') / 'part-00000-of-00001.parquet')
    dom = parse(report.render(str(output)))
    assert not list(dom.find_all('img')) and len(list(dom.find_all('figure', 'photo'))) == 4
    assert all(m.text().startswith('no thumbnail: ') for m in dom.find_all('div', 'missing'))


def test_report_reads_and_writes_gcs(caption_output, gcs, gcs_bucket, tmp_path):
    output, rows = caption_output
    bucket = gcs.bucket(gcs_bucket)
    row = rows['coffee.jpg']
    bucket.blob('photos/coffee.jpg').upload_from_filename(row[schema.URI])
    cloud_row = {**row, schema.URI: f'gs://{gcs_bucket}/photos/coffee.jpg'}
    parquet = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([cloud_row], schema=schema.CAPTIONS_SCHEMA), parquet)
    bucket.blob(f'{schema.partition(schema.CAPTIONS_DIR, "monday")}/part-00000-of-00001.parquet').upload_from_string(
        parquet.getvalue().to_pybytes())
    bucket.blob(schema.manifest_path('monday')).upload_from_filename(str(output / schema.manifest_path('monday')))
    assert cli.main(['report', '--captions', f'gs://{gcs_bucket}', '--output', f'gs://{gcs_bucket}/report.html']) == 0
    dom = parse(bucket.blob('report.html').download_as_text())
    assert gallery(dom) == {'coffee.jpg': (CAPTIONS['coffee'], False)}
    assert dom.find('img').attrs['src'].startswith('data:image/jpeg;base64,')


def test_cli_writes_the_report_and_errors_are_one_line(caption_output, tmp_path, capsys):
    path = tmp_path / 'report.html'
    assert cli.main(['report', '--captions', str(caption_output[0]), '--output', str(path)]) == 0
    assert sorted(gallery(parse(path.read_text(encoding='utf-8')))) == sorted(
        name for photos in RUNS.values() for name in photos)
    capsys.readouterr()
    assert cli.main(['report', '--captions', str(tmp_path / 'nothing'), '--output', str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('img2txt report: error: ') and 'holds no caption runs' in err and '\n' not in err
    assert cli.main(['report', '--captions', str(caption_output[0]), '--evaluation', str(tmp_path),
                     '--output', str(path)]) == 2
    assert f'{tmp_path} is not an evaluation output' in capsys.readouterr().err


def test_heat_tile_keeps_the_attended_cell_bright_and_dims_the_rest():
    crop = np.full((224, 224, 3), 200, np.uint8)
    weights = np.zeros((7, 7), np.float32)
    weights[1, 5] = 1.0
    tile = report.heat_tile(crop, weights).astype(int)
    assert tile.shape == (report.ATTENTION_TILE, report.ATTENTION_TILE, 3)
    cell = report.ATTENTION_TILE / 7
    assert abs(tile[int(1.5 * cell), int(5.5 * cell)] - 200).max() <= 2  # the cell's centre keeps its brightness
    assert abs(tile[-1, 0] - 200 * report.ATTENTION_FLOOR).max() <= 2    # far from it: dimmed to the floor
    # Smooth: at the cell's edge brightness is half way down, not a step from one level to the other.
    assert 200 * report.ATTENTION_FLOOR + 40 < tile[int(2 * cell), int(5.5 * cell)][0] < 200 - 40
    uniform = report.heat_tile(crop, np.full((7, 7), 1 / 49, np.float32))
    assert abs(uniform.astype(int) - 200).max() <= 1  # looking everywhere alike dims nothing


def test_attention_section_shows_each_word_of_the_caption_over_its_heat_map(attention_page, caption_output,
                                                                            attention_captioner, attention_model_dir,
                                                                            tmp_path):
    path, text = attention_page
    _, rows = caption_output
    dom = dump_dom(path, tmp_path)
    assert [section.attrs['id'] for section in dom.find_all('section')] == [
        'gallery', 'errors', 'runs', 'training', 'attention']
    shown = looks(dom)
    # The first three photos of the gallery, in its order.
    assert [name for name, *_ in shown] == list(gallery(dom))[:3]
    model = Captioner.load(attention_captioner[0])
    crops = np.stack([image_decoding.decode(read_bytes(rows[name][schema.URI]), model.input_spec)
                      for name, *_ in shown])
    for (name, caption_text, crop, tiles), (candidate, weights), pixels in zip(shown, model.attend(crops), crops):
        assert caption_text == candidate.caption == rows[name][schema.CAPTION]
        assert [word for word, _ in tiles] == caption_text.split() and len(tiles) == len(weights)
        assert crop.shape == (report.ATTENTION_TILE, report.ATTENTION_TILE, 3)
        # Each tile is this photo's crop under its own word's weights, but for JPEG's loss (about 3 of 255).
        for (word, tile), cells in zip(tiles, weights):
            error = np.abs(tile - report.heat_tile(pixels, cells)).mean()
            assert error < 5, (name, word, error)
    note = dom.by_id('attention').find('p', 'note').text()
    assert attention_captioner[1] in note and str(attention_model_dir / training_run.EXPORT_DIR / '30') in note
    # The hostile file name is text here too.
    assert MALICIOUS in [name for name, *_ in shown]
    assert not [node for node in dom.find_all() if any(name.startswith('on') for name in node.attrs)]
    # Still nothing fetched: every image is inline, the policy is the page's.
    assert 'http://' not in text and 'https://' not in text and not list(dom.find_all('link'))
    assert_self_contained(dom, 4 + sum(1 + len(tiles) for *_, tiles in shown))


def blob_weights(words, grid, seed):
    """float32 [words, H, W]: each word looks around a cell of its own (a Gaussian blob, summing to 1)."""
    height, width = grid
    rows, cols = np.mgrid[:height, :width]
    centres = np.random.default_rng(seed).choice(height * width, size=words, replace=False)
    weights = np.exp(-((rows - centres[:, None, None] // width) ** 2 + (cols - centres[:, None, None] % width) ** 2)
                     / 1.5)
    return (weights / weights.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


def test_each_heat_tile_is_bright_where_its_word_looked(caption_output, tmp_path):
    # The drawing, on weights set here (where a trained model looks is its own business: it differs by CPU).
    _, rows = caption_output
    grid = (7, 7)
    given = []
    for seed, name in enumerate(list(rows)[:3]):
        row = rows[name]
        crop = image_decoding.decode(read_bytes(row[schema.URI]), InputSpec(size=224, resize=256))
        words = len(row[schema.CAPTION].split())
        given.append(report.Look(row[schema.URI], crop, Candidate(row[schema.CAPTION], -1.0, words),
                                 blob_weights(words, grid, seed)))
    page = tmp_path / 'page.html'
    page.write_text(document('set weights', 'three photos', [
        report.attention_section(given, 0, 'attention@000000000000', 'export', grid)]), encoding='utf-8')
    shown = looks(dump_dom(page, tmp_path))
    assert [name for name, *_ in shown] == list(rows)[:3]
    for (name, caption_text, crop, tiles), (*_, weights) in zip(shown, given):
        assert [word for word, _ in tiles] == caption_text.split() and len(tiles) == len(weights) > 1
        levels = [cell_levels(tile, crop, grid) for _, tile in tiles]
        # Each tile's brightness per cell follows its own word's weights, better than any other word's.
        fit = np.array([[np.corrcoef(level.ravel(), w.ravel())[0, 1] for w in weights] for level in levels])
        assert (np.diag(fit) > 0.8).all(), (name, np.diag(fit))
        for i in range(len(weights)):
            for j in range(len(weights)):
                if i != j:
                    assert fit[i, i] > fit[i, j], (name, i, j)
                    # Not JPEG noise: tiles of words that look elsewhere differ clearly.
                    assert np.abs(tiles[i][1] - tiles[j][1]).mean() > 0.03 * crop.mean(), (name, i, j)
        # The most attended cell keeps most of its brightness, the least attended loses most.
        for level, w in zip(levels, weights):
            assert level.ravel()[w.argmax()] > 0.6 and level.ravel()[w.argmin()] < 0.3


def test_a_show_and_tell_model_or_attention_images_0_has_no_attention_section(caption_output, attention_model_dir,
                                                                              model_dir, small_captioner, tmp_path):
    show_and_tell = model_dir_with(model_dir[0], tmp_path / 'model', {30: small_captioner[0]})
    for directory, count in ((show_and_tell, report.DEFAULT_ATTENTION_IMAGES), (attention_model_dir, 0)):
        dom = parse(report.render(str(caption_output[0]), model_dir=str(directory), attention_images=count))
        assert [section.attrs['id'] for section in dom.find_all('section')] == [
            'gallery', 'errors', 'runs', 'training']


def test_attention_skips_unreadable_photos_and_the_cli_takes_the_flag(caption_output, attention_model_dir,
                                                                      tmp_path, capsys):
    output, rows = caption_output
    copy = tmp_path / 'copy'
    shutil.copytree(output, copy)
    # Tuesday's photos (first in the gallery) moved away since they were captioned.
    tuesday = copy / schema.partition(schema.CAPTIONS_DIR, 'tuesday')
    [part] = tuesday.glob('*.parquet')
    table = pq.read_table(part, schema=schema.CAPTIONS_SCHEMA)
    uris = [str(tmp_path / 'gone' / uri.rsplit('/', 1)[1]) for uri in table.column(schema.URI).to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index(schema.URI), schema.URI, pa.array(uris)), part)
    page = tmp_path / 'report.html'
    assert cli.main(['report', '--captions', str(copy), '--model-dir', str(attention_model_dir),
                     '--attention-images', '1', '--output', str(page)]) == 0
    dom = parse(page.read_text(encoding='utf-8'))
    [(name, caption_text, _, tiles)] = looks(dom)
    assert name == list(gallery(dom))[2] and name in RUNS['monday'] and caption_text == rows[name][schema.CAPTION]
    assert len(tiles) == len(caption_text.split())
    assert '2 left out: could not be read.' in dom.by_id('attention').text()
    capsys.readouterr()
    assert cli.main(['report', '--captions', str(copy), '--model-dir', str(attention_model_dir),
                     '--attention-images', '-1', '--output', str(page)]) == 2
    err = capsys.readouterr().err.strip()
    assert '--attention-images must be at least 0' in err and '\n' not in err
