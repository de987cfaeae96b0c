"""The demo's generated scenes: seeded, and a test split that measures colour binding."""
import json

from img2txt.pipelines.datasets import scenes


def read(path):
    return [json.loads(line) for line in open(path, encoding='utf-8')]


def test_same_seed_same_scenes(tmp_path):
    first, images = scenes.write_scenes(tmp_path / 'a', 60, seed=3)
    second, other_images = scenes.write_scenes(tmp_path / 'b', 60, seed=3)
    assert read(first) == read(second)
    for record in read(first):
        assert open(f'{images}/{record["image"]}', 'rb').read() == open(f'{other_images}/{record["image"]}',
                                                                         'rb').read()


def test_held_out_pairs_appear_only_in_the_held_out_subset(tmp_path):
    path, _ = scenes.write_scenes(tmp_path, 400, seed=0)
    records = read(path)
    held_out = {f'{colour} {shape}' for colour, shape in scenes.HELD_OUT}
    subsets = {}
    for record in records:
        named = set(record['mentions'])
        assert all(phrase in ' '.join(record['captions']) for phrase in named)
        subset = record.get('subset', '')
        subsets[record['split'], subset] = subsets.get((record['split'], subset), 0) + 1
        if subset == scenes.HELD_OUT_SUBSET:
            assert named & held_out, record
        else:
            assert not named & held_out, record
    assert subsets == {('train', ''): 320, ('val', ''): 40, ('test', scenes.SEEN): 20,
                       ('test', scenes.HELD_OUT_SUBSET): 20}
    # The held-out pairs' colours and shapes are all seen in training, in other pairs.
    train_words = {word for r in records if r['split'] == 'train' for m in r['mentions'] for word in m.split()}
    assert {word for pair in scenes.HELD_OUT for word in pair} <= train_words
