"""Tests of batched beam search against exhaustive search, greedy decoding and itself.

The ``assert_*`` checks take any step-wise model and its features, so the
attention decoder's tests (test_attention.py) run the same ones.
"""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from img2txt.model.networks.show_and_tell import ShowAndTell, ShowAndTellConfig
from img2txt.model.serving.beam_search import beam_search, blockwise_top_k, length_penalty, texts
from img2txt.schemas.vocabulary import END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNK_ID

FEATURE_DIM = 5


def tiny_model(vocab_size, seed=0):
    """A random model; weights as large as these make its captions differ by image and length."""
    keras.utils.set_random_seed(seed)
    return ShowAndTell(ShowAndTellConfig(vocab_size=vocab_size, feature_dim=FEATURE_DIM, embedding_size=8,
                                   lstm_units=12, initializer_scale=1.0))


def random_features(batch, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, FEATURE_DIM)).astype(np.float32)


def teacher_forced_log_probs(model, features, sequences, max_length):
    """Log-probabilities of word sequences (plus END if shorter than max_length) under the training forward."""
    input_ids = np.full((len(sequences), max_length + 1), PAD_ID, np.int32)
    for i, words in enumerate(sequences):
        input_ids[i, :len(words) + 1] = [START_ID, *words]
    log_probs = tf.nn.log_softmax(model((np.repeat(features[None], len(sequences), 0), input_ids))).numpy()
    totals = []
    for i, words in enumerate(sequences):
        targets = list(words) + ([END_ID] if len(words) < max_length else [])
        totals.append(sum(log_probs[i, t, token] for t, token in enumerate(targets)))
    return np.array(totals)


def captions(result, image):
    """The (words, length, log_prob) hypotheses of one image, best first."""
    token_ids, lengths, log_probs = (np.asarray(x)[image] for x in result)
    return [(list(ids[:n]), int(n), float(lp)) for ids, n, lp in zip(token_ids, lengths, log_probs)]


def assert_wide_beam_is_exhaustive(model, features, alpha):
    """Beam search with a beam as wide as every candidate finds the exhaustive ranking.

    The model's vocabulary must be the 4 reserved tokens and 3 words (UNK is
    never chosen), and 27 = 3 ** 3 keeps every prefix of 3 words alive, so
    the search is exact.
    """
    max_length, beam_size = 4, 27
    words = list(range(len(RESERVED_TOKENS), model.config.vocab_size))
    assert len(words) ** (max_length - 1) == beam_size
    result = beam_search(model, features, beam_size, max_length, length_normalization=alpha)

    sequences = [list(s) for n in range(1, max_length + 1) for s in itertools.product(words, repeat=n)]
    lengths = np.array([len(s) for s in sequences])
    for image in range(len(features)):
        log_probs = teacher_forced_log_probs(model, features[image], sequences, max_length)
        scores = log_probs / length_penalty(lengths, alpha).numpy()
        order = np.argsort(-scores, kind='stable')[:beam_size]
        # The ranking this test checks must not hinge on rounding.
        assert np.min(-np.diff(scores[np.argsort(-scores)][:beam_size + 1])) > 1e-5
        assert any(lengths[order] < max_length), 'the fixture should rank some END captions high'

        found = captions(result, image)
        assert [f[0] for f in found] == [sequences[i] for i in order]
        assert [f[1] for f in found] == list(lengths[order])
        np.testing.assert_allclose([f[2] for f in found], log_probs[order], rtol=1e-5)


@pytest.mark.parametrize('alpha', [0.0, 0.7])
def test_wide_beam_equals_exhaustive_search(alpha):
    assert_wide_beam_is_exhaustive(tiny_model(vocab_size=7), random_features(2), alpha)


def greedy_decode(model, features, max_length):
    """Argmax decoding of one image, written plainly."""
    state = model.initial_state(features[None])
    token, words, total = START_ID, [], 0.0
    for t in range(max_length):
        log_probs, state = model.step(tf.constant([token]), state)
        log_probs = log_probs.numpy()[0]
        log_probs[[PAD_ID, START_ID, UNK_ID]] = -np.inf
        if t == 0:
            log_probs[END_ID] = -np.inf
        token = int(np.argmax(log_probs))
        total += log_probs[token]
        if token == END_ID:
            break
        words.append(token)
    return words, total


def assert_beam_of_one_is_greedy(model, features, max_length=8):
    """Beam 1 finds each image's argmax caption; some end early and some at max_length."""
    result = beam_search(model, features, beam_size=1, max_length=max_length)
    lengths = []
    for image in range(len(features)):
        [(words, length, log_prob)] = captions(result, image)
        expected_words, expected_log_prob = greedy_decode(model, features[image], max_length)
        assert words == expected_words and length == len(expected_words)
        assert log_prob == pytest.approx(expected_log_prob, rel=1e-5)
        lengths.append(length)
    assert min(lengths) < max_length and max(lengths) == max_length, \
        'the fixture should have captions ending early and at max length'


def test_unk_is_never_chosen_even_by_a_model_that_prefers_it():
    # Rare words map to UNK, so a model trained on real captions gives it real mass; here, most of it.
    model = tiny_model(vocab_size=20)
    model((random_features(1), np.full((1, 1), START_ID)))
    bias = model.logits.bias.numpy()
    bias[UNK_ID] += 50.0
    model.logits.bias.assign(bias)
    features = random_features(6, seed=1)
    log_probs, _ = model.step(tf.fill([6], START_ID), model.initial_state(features))
    assert (np.argmax(log_probs, axis=-1) == UNK_ID).all()
    for beam_size in (1, 3):
        result = beam_search(model, features, beam_size=beam_size, max_length=8)
        ids, lengths = result.token_ids.numpy(), result.lengths.numpy()
        assert (lengths > 0).all() and not (ids == UNK_ID).any()
        # The text is exactly the tokens: as many words as the length says.
        vocab = list(RESERVED_TOKENS) + [f'w{i}' for i in range(4, 20)]
        assert [[len(c.split()) for c in image] for image in texts(ids, vocab).numpy()] == lengths.tolist()
    # Masked, not renormalised: log-probabilities stay the model's, far below those of UNK.
    assert_beam_of_one_is_greedy(model, features)


def assert_batch_equals_one_image_at_a_time(model, features):
    """Each image's beam search result does not depend on the images beside it."""
    batched = beam_search(model, features, beam_size=3, max_length=8, length_normalization=0.5)
    for image in range(len(features)):
        single = beam_search(model, features[image:image + 1], beam_size=3, max_length=8, length_normalization=0.5)
        np.testing.assert_array_equal(batched.token_ids[image], single.token_ids[0])
        np.testing.assert_array_equal(batched.lengths[image], single.lengths[0])
        np.testing.assert_allclose(batched.log_probs[image], single.log_probs[0], rtol=1e-5)


def test_beam_of_one_is_greedy_decoding():
    assert_beam_of_one_is_greedy(tiny_model(vocab_size=20), random_features(6, seed=1))


def test_batch_equals_one_image_at_a_time():
    assert_batch_equals_one_image_at_a_time(tiny_model(vocab_size=20), random_features(5, seed=2))


def test_captions_are_well_formed_and_ranked():
    max_length, alpha = 6, 0.5
    model = tiny_model(vocab_size=20, seed=3)
    features = random_features(6, seed=3)
    result = beam_search(model, features, beam_size=4, max_length=max_length, length_normalization=alpha)
    assert result.token_ids.shape == (6, 4, max_length) and result.token_ids.dtype == tf.int32
    assert result.lengths.shape == (6, 4) and result.log_probs.shape == (6, 4)

    all_lengths = []
    for image in range(6):
        found = captions(result, image)
        for words, length, _ in found:
            assert length >= 1
            assert not set(words) & {PAD_ID, START_ID, END_ID}
            all_lengths.append(length)
        ids, lengths = np.asarray(result.token_ids[image]), np.asarray(result.lengths[image])
        assert (ids[np.arange(max_length) >= lengths[:, None]] == PAD_ID).all()
        # A caption shorter than max_length ended with END: its log-prob includes END's.
        expected = teacher_forced_log_probs(model, features[image], [f[0] for f in found], max_length)
        np.testing.assert_allclose([f[2] for f in found], expected, rtol=1e-5)
        scores = [lp / length_penalty(n, alpha).numpy() for _, n, lp in found]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(f[0]) for f in found}) == len(found)
    assert min(all_lengths) < max_length == max(all_lengths)


def test_top_k_and_argument_checks():
    model = tiny_model(vocab_size=20)
    features = random_features(2)
    full = beam_search(model, features, beam_size=3, max_length=5)
    top = beam_search(model, features, beam_size=3, max_length=5, top_k=2)
    for full_field, top_field in zip(full, top):
        np.testing.assert_array_equal(top_field, full_field[:, :2])
    with pytest.raises(ValueError, match='top_k'):
        beam_search(model, features, beam_size=3, max_length=5, top_k=4)
    with pytest.raises(ValueError, match='beam_size'):
        beam_search(model, features, beam_size=0, max_length=5)
    with pytest.raises(ValueError, match='length_normalization'):
        beam_search(model, features, beam_size=3, max_length=5, length_normalization=-0.5)


def assert_runs_in_exported_function_with_dynamic_batch(model, batches, export_dir):
    """Beam search in a SavedModel signature with a dynamic batch: one trace, eager results, also reloaded."""
    module = tf.Module()
    module.model = model
    module.caption = tf.function(
        lambda features: beam_search(model, features, beam_size=3, max_length=7)._asdict(),
        input_signature=[tf.TensorSpec((None,) + batches[0].shape[1:], tf.float32)])
    expected = [beam_search(model, features, beam_size=3, max_length=7) for features in batches]

    def check(caption):
        for features, eager in zip(batches, expected):
            outputs = caption(features)
            np.testing.assert_array_equal(outputs['token_ids'], eager.token_ids)
            np.testing.assert_array_equal(outputs['lengths'], eager.lengths)
            np.testing.assert_allclose(outputs['log_probs'], eager.log_probs, rtol=1e-5)

    check(module.caption)
    assert module.caption.experimental_get_tracing_count() == 1
    tf.saved_model.save(module, str(export_dir))
    loaded = tf.saved_model.load(str(export_dir))
    check(loaded.caption)


def test_runs_in_exported_function_with_dynamic_batch(tmp_path):
    assert_runs_in_exported_function_with_dynamic_batch(
        tiny_model(vocab_size=20), [random_features(batch, seed=batch) for batch in (5, 2)], tmp_path / 'export')


@pytest.mark.parametrize('shape, k', [((7, 1000), 3), ((7, 1000), 1), ((2, 3, 700), 5), ((4, 200), 2)])
def test_blockwise_top_k_equals_top_k_ties_included(shape, k):
    rng = np.random.default_rng(k)
    # Few distinct values, some -inf, so that ties decide much of the order.
    values = rng.integers(0, 8, size=shape).astype(np.float32)
    values[rng.random(shape) < 0.2] = -np.inf
    for expected, found in zip(tf.math.top_k(values, k), blockwise_top_k(values, k, block_size=64)):
        np.testing.assert_array_equal(found, expected)


def test_texts_join_the_words_and_leave_out_the_padding():
    vocab = list(RESERVED_TOKENS) + ['a', 'dog', 'runs']
    token_ids = np.array([[[4, 5, 6, PAD_ID], [4, 6, 5, 6]],
                          [[5, PAD_ID, PAD_ID, PAD_ID], [PAD_ID] * 4]])
    assert texts(token_ids, vocab).numpy().tolist() == [[b'a dog runs', b'a runs dog runs'], [b'dog', b'']]
