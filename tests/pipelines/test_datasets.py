"""Tests for the caption dataset readers, on small files in each real format."""
import json
import os

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from img2txt.pipelines.datasets import (
    FORMATS, CaptionedImage, DatasetOutputs, ReadCoco, ReadFlickr8k, ReadPascal, read_dataset)


def images_are(expected):
    """Matcher: exactly ``expected``, each a CaptionedImage (not a bare tuple)."""
    def check(actual):
        assert all(type(image) is CaptionedImage for image in actual), actual
        equal_to(expected)(actual)
    return check


def errors_are(expected):
    """Matcher: one record per (input, error_type, message fragment), stage 'parse'."""
    def check(actual):
        assert all(record['stage'] == 'parse' for record in actual), actual
        equal_to([(name, error_type) for name, error_type, _ in expected])(
            [(record['input'], record['error_type']) for record in actual])
        messages = {(r['input'], r['error_type']): r['message'] for r in actual}
        for name, error_type, fragment in expected:
            assert fragment in messages[name, error_type], (name, messages[name, error_type])
    return check


def write_json(path, data, replace=None):
    """Writes ``data`` as JSON; ``replace`` maps placeholders to raw (possibly invalid) bytes."""
    raw = json.dumps(data, indent=1).encode('utf-8')
    for placeholder, value in (replace or {}).items():
        raw = raw.replace(placeholder.encode(), value)
    path.write_bytes(raw)
    return str(path)


def coco_image(image_id, split='train2014'):
    return {'license': 3, 'file_name': f'COCO_{split}_{image_id:012d}.jpg',
            'coco_url': f'http://images.cocodataset.org/{split}/COCO_{split}_{image_id:012d}.jpg',
            'height': 480, 'width': 640, 'date_captured': '2013-11-14 16:28:13',
            'flickr_url': 'http://farm4.staticflickr.com/1/2_3.jpg', 'id': image_id}


def coco_file(images, annotations):
    return {'info': {'description': 'This is stable 1.0 version of the 2014 MS COCO dataset.',
                     'year': 2014, 'version': '1.0'},
            'images': images, 'licenses': [{'url': 'http://x', 'id': 3, 'name': 'CC'}],
            'annotations': annotations}


def test_coco(tmp_path):
    train = write_json(tmp_path / 'captions_train2014.json', coco_file(
        [coco_image(57870), coco_image(384029), coco_image(222016), {'file_name': 'no_id.jpg'}],
        [
            {'image_id': 57870, 'id': 787980, 'caption': 'A restaurant has modern wooden tables and chairs.'},
            {'image_id': 384029, 'id': 788000, 'caption': 'A man preparing desserts in a kitchen.'},
            {'image_id': 57870, 'id': 789366, 'caption': 'A long restaurant table with rattan chairs.'},
            {'image_id': 384029, 'id': 790000, 'caption': '   '},
            {'image_id': 384029, 'id': 790001, 'caption': 'A CAFE counter'},
            {'image_id': 384029, 'id': 790002, 'caption': ' . '},
            {'image_id': 999, 'id': 790003, 'caption': 'An orphan caption.'},
            {'id': 790004, 'caption': 'No image id.'},
            {'image_id': 384029, 'id': 790005, 'caption': 'A chef and a cake'},
        ]), replace={'CAFE': b'caf\xe9'})
    val = write_json(tmp_path / 'captions_val2014.json', coco_file(
        [coco_image(391895, 'val2014'), coco_image(522418, 'val2014'),
         dict(coco_image(522418, 'val2014'), file_name='other.jpg')],
        [{'image_id': 391895, 'id': 1, 'caption': 'A man on a moped.'},
         {'image_id': 522418, 'id': 2, 'caption': 'A woman cutting a cake.'}]))
    custom = write_json(tmp_path / 'my_captions.json', coco_file(
        [coco_image(1, 'test2015')], [{'image_id': 1, 'id': 9, 'caption': 'A cat.'}]))
    root = str(tmp_path / 'images')

    with TestPipeline() as p:
        train_out = p | 'Train' >> ReadCoco(train, root)
        val_out = p | 'Val' >> ReadCoco(val, root)
        custom_out = p | 'Custom' >> ReadCoco(custom, root, split='test')

        assert_that(train_out.images, images_are([
            CaptionedImage('57870', os.path.join(root, 'COCO_train2014_000000057870.jpg'), 'train',
                           ('A restaurant has modern wooden tables and chairs.',
                            'A long restaurant table with rattan chairs.')),
            CaptionedImage('384029', os.path.join(root, 'COCO_train2014_000000384029.jpg'), 'train',
                           ('A man preparing desserts in a kitchen.', 'A chef and a cake')),
        ]), label='TrainImages')
        assert_that(train_out.errors, errors_are([
            (f'{train}:images[3]', 'InvalidRecord', 'id must be'),
            ('384029#1', 'EmptyCaptionError', f'has no words: {"   "!r} (at {train}:annotation 790000)'),
            ('384029#2', 'UnicodeDecodeError', "can't decode byte 0xe9"),
            ('384029#3', 'EmptyCaptionError', 'has no words'),
            (f'{train}:annotation 790003', 'UnknownImage', 'image_id 999'),
            (f'{train}:annotation 790004', 'InvalidRecord', 'image_id must be'),
            ('222016', 'NoCaptions', 'it has no captions'),
        ]), label='TrainErrors')
        assert_that(val_out.images, images_are([
            CaptionedImage('391895', os.path.join(root, 'COCO_val2014_000000391895.jpg'), 'val',
                           ('A man on a moped.',)),
        ]), label='ValImages')
        assert_that(val_out.errors, errors_are([
            ('522418', 'ConflictingRecords', 'other.jpg'),
        ]), label='ValErrors')
        assert_that(custom_out.images, images_are([
            CaptionedImage('1', os.path.join(root, 'COCO_test2015_000000000001.jpg'), 'test', ('A cat.',)),
        ]), label='CustomImages')


def karpathy_image(i, filename, split, raws, filepath=None, cocoid=None):
    entry = {'sentids': list(range(10 * i, 10 * i + len(raws))), 'imgid': i, 'split': split,
             'filename': filename,
             'sentences': [{'tokens': raw.lower().strip(' .').split(), 'raw': raw, 'imgid': i,
                            'sentid': 10 * i + j} for j, raw in enumerate(raws)]}
    if filepath:
        entry['filepath'] = filepath
    if cocoid:
        entry['cocoid'] = cocoid
    return entry


def test_karpathy(tmp_path):
    images = [
        karpathy_image(0, 'COCO_val2014_000000391895.jpg', 'test',
                       ['A man with a red helmet on a small moped on a dirt road. ', 'Man riding a motor bike.'],
                       'val2014', 391895),
        karpathy_image(1, 'COCO_val2014_000000522418.jpg', 'restval', ['A woman cutting a cake.'],
                       'val2014', 522418),
        karpathy_image(2, 'COCO_train2014_000000057870.jpg', 'train', ['A restaurant.', '?'],
                       'train2014', 57870),
        karpathy_image(3, 'COCO_val2014_000000184613.jpg', 'val', ['A child holding an umbrella.'],
                       'val2014', 184613),
        karpathy_image(4, 'COCO_val2014_000000000001.jpg', 'bogus', ['A dog.'], 'val2014', 1),
        {'imgid': 5, 'split': 'train', 'sentences': []},
    ]
    # A sentence with Karpathy's tokens but no raw text.
    images[3]['sentences'].append({'tokens': [], 'imgid': 3, 'sentid': 99})
    coco = write_json(tmp_path / 'dataset_coco.json', {'images': images, 'dataset': 'coco'})
    flickr = write_json(tmp_path / 'dataset_flickr8k.json', {'images': [
        karpathy_image(0, '2513260012_03d33305cf.jpg', 'train', ['A black dog is running after a white dog .']),
    ], 'dataset': 'flickr8k'})
    root = str(tmp_path / 'coco')

    with TestPipeline() as p:
        default = p | 'Default' >> read_dataset('karpathy', coco, root)
        kept = p | 'KeepRestval' >> read_dataset('karpathy', coco, root, keep_restval=True)
        flickr_out = p | 'Flickr' >> read_dataset('karpathy', flickr, '/data/flickr8k')

        def expected(restval_split):
            return [
                CaptionedImage('391895', os.path.join(root, 'val2014', 'COCO_val2014_000000391895.jpg'),
                               'test', ('A man with a red helmet on a small moped on a dirt road. ',
                                        'Man riding a motor bike.')),
                CaptionedImage('522418', os.path.join(root, 'val2014', 'COCO_val2014_000000522418.jpg'),
                               restval_split, ('A woman cutting a cake.',)),
                CaptionedImage('57870', os.path.join(root, 'train2014', 'COCO_train2014_000000057870.jpg'),
                               'train', ('A restaurant.',)),
                CaptionedImage('184613', os.path.join(root, 'val2014', 'COCO_val2014_000000184613.jpg'),
                               'val', ('A child holding an umbrella.',)),
            ]
        expected_errors = [
            ('57870#1', 'EmptyCaptionError', "'?'"),
            ('184613#1', 'InvalidCaption', 'got None'),
            (f'{coco}:images[4]', 'UnknownSplit', "'bogus'"),
            (f'{coco}:images[5]', 'InvalidRecord', 'filename must be'),
        ]
        assert_that(default.images, images_are(expected('train')), label='DefaultImages')
        assert_that(default.errors, errors_are(expected_errors), label='DefaultErrors')
        assert_that(kept.images, images_are(expected('restval')), label='KeptImages')
        assert_that(kept.errors, errors_are(expected_errors), label='KeptErrors')
        assert_that(flickr_out.images, images_are([
            CaptionedImage('2513260012_03d33305cf.jpg', '/data/flickr8k/2513260012_03d33305cf.jpg', 'train',
                           ('A black dog is running after a white dog .',)),
        ]), label='FlickrImages')
        assert_that(flickr_out.errors, errors_are([]), label='FlickrErrors')


def write_lines(path, lines, newline=b'\n'):
    """Writes ``lines`` (str or raw bytes) joined by ``newline``, ending with one."""
    path.write_bytes(b''.join((line if isinstance(line, bytes) else line.encode()) + newline
                              for line in lines))
    return str(path)


def test_flickr(tmp_path):
    flickr8k = tmp_path / 'Flickr8k_text'
    flickr8k.mkdir()
    tokens = write_lines(flickr8k / 'Flickr8k.token.txt', [
        '1000268201_693b08cb0e.jpg#0\tA child in a pink dress is climbing up a set of stairs in an entry way .',
        '1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .',
        '1001773457_577c3a7d70.jpg#1\tA black dog and a tri-colored dog playing with each other on the road .',
        '1001773457_577c3a7d70.jpg#0\tA black dog and a spotted dog are fighting',
        b'1001773457_577c3a7d70.jpg#2\tA dog in a caf\xe9 .',
        '',
        '1002674143_1b742ab4b8.jpg#0\tA little girl covered in paint sits in front of a painted rainbow .',
        '2258277193_586949ec62.jpg.1#0\tPeople waiting at a bus stop .',
        '1003163366_44323f5815.jpg 0 A man lays on a bench .',
        '1003163366_44323f5815.jpg#x\tA man lays on a bench .',
        '1007129816_e794419615.jpg#0\t.',
    ], newline=b'\r\n')
    write_lines(flickr8k / 'Flickr_8k.trainImages.txt',
                ['1000268201_693b08cb0e.jpg', '1001773457_577c3a7d70.jpg', '1007129816_e794419615.jpg'])
    write_lines(flickr8k / 'Flickr_8k.devImages.txt', ['1002674143_1b742ab4b8.jpg', '3385593926_d3e9c21170.jpg'])
    write_lines(flickr8k / 'Flickr_8k.testImages.txt', ['1002674143_1b742ab4b8.jpg'])
    flickr30k = write_lines(tmp_path / 'results_20130124.token', [
        '1000092795.jpg#0\tTwo young guys with shaggy hair look at their hands while hanging out in the yard .',
        '1000092795.jpg#1\tTwo young , White males are outside near many bushes .',
        '10002456.jpg#0\tSeveral men in hard hats are operating a giant pulley system .',
    ])
    split30k = write_lines(tmp_path / 'test30k.txt', ['10002456.jpg'])
    root = '/data/Flicker8k_Dataset'

    with TestPipeline() as p:
        out8k = p | 'Flickr8k' >> read_dataset('flickr8k', tokens, root)
        out30k = p | 'Flickr30k' >> read_dataset('flickr30k', flickr30k, '/f30k')
        split_out = p | 'Flickr30kSplit' >> read_dataset(
            'flickr30k', flickr30k, '/f30k', split_files={'test': split30k})

        assert_that(out8k.images, images_are([
            CaptionedImage('1000268201_693b08cb0e.jpg', f'{root}/1000268201_693b08cb0e.jpg', 'train', (
                'A child in a pink dress is climbing up a set of stairs in an entry way .',
                'A girl going into a wooden building .')),
            CaptionedImage('1001773457_577c3a7d70.jpg', f'{root}/1001773457_577c3a7d70.jpg', 'train', (
                'A black dog and a spotted dog are fighting',
                'A black dog and a tri-colored dog playing with each other on the road .')),
        ]), label='Images8k')
        assert_that(out8k.errors, errors_are([
            ('1001773457_577c3a7d70.jpg#2', 'UnicodeDecodeError', f'(at {tokens}:5)'),
            ('1002674143_1b742ab4b8.jpg', 'ConflictingRecords', 'Flickr_8k.testImages.txt:1'),
            ('2258277193_586949ec62.jpg.1', 'UnassignedSplit', 'none of the split lists'),
            (f'{tokens}:9', 'MalformedLine', 'IMAGE#N<TAB>caption'),
            (f'{tokens}:10', 'MalformedLine', '#x'),
            ('1007129816_e794419615.jpg#0', 'EmptyCaptionError', 'has no words'),
            ('1007129816_e794419615.jpg', 'NoCaptions', 'all 1 of its captions were rejected'),
            ('3385593926_d3e9c21170.jpg', 'NoCaptions', 'Flickr_8k.devImages.txt:2'),
        ]), label='Errors8k')
        assert_that(out30k.images, images_are([
            CaptionedImage('1000092795.jpg', '/f30k/1000092795.jpg', 'train', (
                'Two young guys with shaggy hair look at their hands while hanging out in the yard .',
                'Two young , White males are outside near many bushes .')),
            CaptionedImage('10002456.jpg', '/f30k/10002456.jpg', 'train', (
                'Several men in hard hats are operating a giant pulley system .',)),
        ]), label='Images30k')
        assert_that(out30k.errors, errors_are([]), label='Errors30k')
        assert_that(split_out.images | beam.Map(lambda image: (image.image_id, image.split)),
                    equal_to([('10002456.jpg', 'test')]), label='SplitImages30k')
        assert_that(split_out.errors, errors_are([
            ('1000092795.jpg', 'UnassignedSplit', 'none of the split lists'),
        ]), label='SplitErrors30k')


def test_pascal(tmp_path):
    # Flat copy: sentences beside the images.
    flat = tmp_path / 'flat'
    (flat / 'aeroplane').mkdir(parents=True)
    write_lines(flat / 'aeroplane' / '2008_000033.txt', [
        ' A jet lands at an airport while another takes off next to it.',
        '',
        'Two airplanes parked in an airport.',
        '...',
    ])
    (flat / 'aeroplane' / '2008_000033.jpg').write_bytes(b'not read here')
    (flat / 'bicycle').mkdir()
    write_lines(flat / 'bicycle' / '2008_000725.txt', ['   ', '!'])
    # The download script's layout: ROOT/sentence/CLASS/NAMEtxt, ROOT/dataset/CLASS/NAME.jpg.
    split = tmp_path / 'split'
    (split / 'sentence' / 'bird').mkdir(parents=True)
    write_lines(split / 'sentence' / 'bird' / '2008_000054txt', ['A bird on a branch.'])

    with TestPipeline() as p:
        flat_out = p | 'Flat' >> read_dataset('pascal', str(flat), str(flat))
        split_out = p | 'Split' >> read_dataset(
            'pascal', str(split / 'sentence'), str(split / 'dataset'), split='test')

        assert_that(flat_out.images, images_are([
            CaptionedImage('aeroplane/2008_000033.jpg', str(flat / 'aeroplane' / '2008_000033.jpg'), 'train', (
                ' A jet lands at an airport while another takes off next to it.',
                'Two airplanes parked in an airport.')),
        ]), label='FlatImages')
        assert_that(flat_out.errors, errors_are([
            ('aeroplane/2008_000033.jpg#2', 'EmptyCaptionError', '2008_000033.txt:4'),
            ('bicycle/2008_000725.jpg#0', 'EmptyCaptionError', 'has no words'),
            ('bicycle/2008_000725.jpg', 'NoCaptions', 'all 1 of its captions were rejected'),
        ]), label='FlatErrors')
        assert_that(split_out.images, images_are([
            CaptionedImage('bird/2008_000054.jpg', str(split / 'dataset' / 'bird' / '2008_000054.jpg'),
                           'test', ('A bird on a branch.',)),
        ]), label='SplitImages')
        assert_that(split_out.errors, errors_are([]), label='SplitErrors')


def test_jsonl_and_counters(tmp_path):
    path = write_lines(tmp_path / 'captions.jsonl', [
        b'\xef\xbb\xbf{"image": "a.jpg", "captions": ["A red ball.", "A ball on grass"], "split": "val"}',
        '{"image": "sub/b.jpg", "captions": ["A blue cube."], "extra": 1}',
        '{"image": "/abs/c.jpg", "captions": ["A cat.", 5, ""], "split": null}',
        '{"image": "gs://bucket/d.jpg", "captions": ["A dog."], "split": "test"}',
        '   ',
        '{"image": "a.jpg", "captions": ["A red ball again."], "split": "val"}',
        '{"image": "e.jpg", "captions": ["one"], "split": "train"}',
        '{"image": "e.jpg", "captions": ["two"], "split": "test"}',
        '{"image": "f.jpg", "captions": []}',
        b'{"image": "g.jpg", "captions": ["ok", "bad \xff byte"]}',
        '{"image": "h.jpg", "captions": ["x"]',
        '[1, 2]',
        '{"captions": ["no image"]}',
        '{"image": "i.jpg", "captions": "not a list"}',
        '{"image": "j.jpg", "captions": ["A dev image."], "split": "dev"}',
    ], newline=b'\r\n')
    root = str(tmp_path / 'imgs')

    p = TestPipeline()
    outputs = p | 'ReadJsonl' >> read_dataset('jsonl', path, root)
    assert isinstance(outputs, DatasetOutputs)
    assert_that(outputs.images, images_are([
        CaptionedImage('a.jpg', os.path.join(root, 'a.jpg'), 'val',
                       ('A red ball.', 'A ball on grass', 'A red ball again.')),
        CaptionedImage('sub/b.jpg', os.path.join(root, 'sub/b.jpg'), 'train', ('A blue cube.',)),
        CaptionedImage('/abs/c.jpg', '/abs/c.jpg', 'train', ('A cat.',)),
        CaptionedImage('gs://bucket/d.jpg', 'gs://bucket/d.jpg', 'test', ('A dog.',)),
        CaptionedImage('g.jpg', os.path.join(root, 'g.jpg'), 'train', ('ok',)),
    ]), label='Images')
    assert_that(outputs.errors, errors_are([
        ('/abs/c.jpg#1', 'InvalidCaption', f'got 5 (at {path}:3 captions[1])'),
        ('/abs/c.jpg#2', 'EmptyCaptionError', 'has no words'),
        ('e.jpg', 'ConflictingRecords', 'e.jpg in test'),
        ('f.jpg', 'NoCaptions', f'it has no captions (at {path}:9)'),
        ('g.jpg#1', 'UnicodeDecodeError', 'byte 0xff'),
        (f'{path}:11', 'JSONDecodeError', 'delimiter'),
        (f'{path}:12', 'InvalidRecord', 'expected a JSON object'),
        (f'{path}:13', 'InvalidRecord', 'image must be'),
        (f'{path}:14', 'InvalidRecord', 'captions must be a list'),
        (f'{path}:15', 'UnknownSplit', "'dev'"),
    ]), label='Errors')
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace('datasets'))['counters']}
    assert counters == {'images': 5, 'captions': 7, 'errors': 10}


def test_unknown_format_names_the_known_ones():
    with pytest.raises(ValueError, match='unknown dataset format .*tfds.*coco, karpathy, flickr8k, '
                                         'flickr30k, pascal, jsonl'):
        read_dataset('tfds', 'x', 'y')
    assert FORMATS == ('coco', 'karpathy', 'flickr8k', 'flickr30k', 'pascal', 'jsonl')


def test_user_errors_raise_naming_the_input(tmp_path):
    missing = str(tmp_path / 'captions_train2014.json')
    with pytest.raises(FileNotFoundError, match=f'caption file not found: {missing}'):
        read_dataset('coco', missing, 'images')
    for fmt in ('karpathy', 'flickr30k', 'jsonl'):
        with pytest.raises(FileNotFoundError, match='caption file not found'):
            read_dataset(fmt, missing, 'images')
    with pytest.raises(ValueError, match='cannot tell the split of .*captions.json'):
        ReadCoco(str(tmp_path / 'captions.json'), 'images', validate=False)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ReadCoco(missing, 'images', split='dev', validate=False)
    tokens = write_lines(tmp_path / 'Flickr8k.token.txt', ['a.jpg#0\tA dog.'])
    with pytest.raises(FileNotFoundError, match='Flickr_8k.trainImages.txt'):
        ReadFlickr8k(tokens, 'images')
    with pytest.raises(FileNotFoundError, match='no PASCAL sentence files match'):
        ReadPascal(str(tmp_path), str(tmp_path))
    # validate=False defers the check, e.g. to build a Dataflow graph offline.
    ReadFlickr8k(tokens, 'images', validate=False)


def test_malformed_json_file_fails_naming_it(tmp_path):
    not_json = tmp_path / 'captions_val2014.json'
    not_json.write_text('{"images": [')
    wrong_shape = write_json(tmp_path / 'dataset_coco.json', {'imgs': []})
    with pytest.raises(Exception, match=f'{not_json} is not valid JSON'):
        with TestPipeline() as p:
            p | read_dataset('coco', str(not_json), 'images')
    with pytest.raises(Exception, match=f'{wrong_shape} is not a Karpathy split file'):
        with TestPipeline() as p:
            p | read_dataset('karpathy', wrong_shape, 'images')


def test_jsonl_subsets_and_mentions_for_evaluation(tmp_path):
    path = write_lines(tmp_path / 'captions.jsonl', [
        '{"image": "a.jpg", "captions": ["a red square"], "split": "test", "subset": "held_out", '
        '"mentions": ["red square"]}',
        '{"image": "b.jpg", "captions": ["a blue circle"], "split": "test", "subset": "seen"}',
        '{"image": "c.jpg", "captions": ["x"], "mentions": "red square"}',
        '{"image": "d.jpg", "captions": ["x"], "subset": 3}',
    ])
    root = str(tmp_path / 'imgs')
    with TestPipeline() as p:
        outputs = p | read_dataset('jsonl', path, root)
        assert_that(outputs.images, images_are([
            CaptionedImage('a.jpg', os.path.join(root, 'a.jpg'), 'test', ('a red square',), 'held_out',
                           ('red square',)),
            CaptionedImage('b.jpg', os.path.join(root, 'b.jpg'), 'test', ('a blue circle',), 'seen'),
        ]), label='Images')
        assert_that(outputs.errors, errors_are([
            (f'{path}:3', 'InvalidRecord', 'mentions must be a list of phrases'),
            (f'{path}:4', 'InvalidRecord', 'subset must be a string'),
        ]), label='Errors')
