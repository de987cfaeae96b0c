"""Tests of the attention configuration, the soft-attention decoder and beam search over it."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from img2txt.model.config import TrainingConfig
from img2txt.model.networks.attention import AttentionConfig, ShowAttendAndTell
from img2txt.model.networks.caption_ops import masked_loss_sum, split_caption_ids
from img2txt.model.networks.show_and_tell import ShowAndTellConfig
from img2txt.model.serving import beam_search
from img2txt.model.training import build_optimizer
from img2txt.schemas.vocabulary import END_ID, PAD_ID, START_ID
from training_data import distinct_captions
from test_beam_search import (assert_batch_equals_one_image_at_a_time, assert_beam_of_one_is_greedy,
                              assert_runs_in_exported_function_with_dynamic_batch,
                              assert_wide_beam_is_exhaustive)

GRID_CELLS, FEATURE_DIM = 4, 5

# Three captions [START, words, END, PAD ...] of different lengths.
CAPTIONS = np.array([
    [START_ID, 4, 5, 6, 7, END_ID],
    [START_ID, 8, END_ID, PAD_ID, PAD_ID, PAD_ID],
    [START_ID, 9, 10, 11, END_ID, PAD_ID],
], np.int32)


def tiny_model(vocab_size=13, seed=0, **overrides):
    """A random model; weights as large as the default scale here make its captions differ by image and length."""
    keras.utils.set_random_seed(seed)
    values = dict(vocab_size=vocab_size, feature_dim=FEATURE_DIM, grid_cells=GRID_CELLS, embedding_size=8,
                  lstm_units=12, attention_units=6, initializer_scale=1.0)
    values.update(overrides)
    return ShowAttendAndTell(AttentionConfig(**values))


def random_grids(batch, seed=0, grid_cells=GRID_CELLS, feature_dim=FEATURE_DIM):
    return np.random.default_rng(seed).normal(size=(batch, grid_cells, feature_dim)).astype(np.float32)


def test_config_defaults_round_trip_and_checks():
    config = AttentionConfig(vocab_size=100, feature_dim=1280)
    assert (config.grid_cells, config.gate, config.doubly_stochastic_weight) == (49, True, 1.0)
    shared = ShowAndTellConfig(vocab_size=100, feature_dim=1280).to_dict()
    assert {name: config.to_dict()[name] for name in shared} == shared
    for config in (config, AttentionConfig(vocab_size=10, feature_dim=8, grid_cells=64, attention_units=32,
                                           gate=False, doubly_stochastic_weight=0.0, beam_size=5)):
        assert AttentionConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown AttentionConfig fields \['attention_size'\]"):
        AttentionConfig.from_dict({**config.to_dict(), 'attention_size': 8})
    for bad, message in [(dict(grid_cells=0), 'grid_cells'), (dict(attention_units=1.5), 'attention_units'),
                         (dict(gate='yes'), 'gate'), (dict(inject_context=1), 'inject_context'),
                         (dict(doubly_stochastic_weight=-1.0), 'doubly_stochastic'),
                         (dict(lstm_dropout_keep_prob=0.0), 'lstm_dropout_keep_prob')]:
        with pytest.raises(ValueError, match=message):
            AttentionConfig(vocab_size=10, feature_dim=8, **bad)


def test_forward_shapes_attention_and_dropout_only_in_training():
    model = tiny_model(lstm_dropout_keep_prob=0.7)
    num_variables = len(model.variables)
    features = random_grids(3)
    input_ids, _ = split_caption_ids(CAPTIONS)
    logits, attention = model((features, input_ids), return_attention=True)
    assert logits.shape == (3, 5, 13) and attention.shape == (3, 5, GRID_CELLS)
    np.testing.assert_allclose(tf.reduce_sum(attention, axis=-1), np.ones((3, 5)), rtol=1e-6)
    # Soft attention: every cell gets some weight, and not the same at every step.
    assert np.all(attention > 0) and not np.allclose(attention[:, 0], attention[:, 1])
    np.testing.assert_array_equal(logits, model((features, input_ids)))
    assert not np.allclose(logits, model((features, input_ids), training=True))
    assert len(model.variables) == num_variables
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        model((random_grids(3, grid_cells=GRID_CELLS + 1), input_ids))


@pytest.mark.parametrize('gate, inject_context', [(True, True), (False, True), (True, False)])
def test_step_api_matches_training_forward(gate, inject_context):
    model = tiny_model(gate=gate, inject_context=inject_context)
    assert (model.gate is not None) == gate
    # The LSTM reads the context only when injecting it.
    assert model.lstm_cell.kernel.shape[0] == 8 + (FEATURE_DIM if inject_context else 0)
    features = random_grids(3, seed=1)
    input_ids, _ = split_caption_ids(CAPTIONS)
    expected = tf.nn.log_softmax(model((features, input_ids)))

    state = model.initial_state(features)
    assert [s.shape for s in state] == [(3, 12), (3, 12), (3, GRID_CELLS, FEATURE_DIM), (3, GRID_CELLS, 6)]
    for t in range(input_ids.shape[1]):
        log_probs, state = model.step(input_ids[:, t], state)
        np.testing.assert_allclose(log_probs, expected[:, t], atol=1e-5)


def test_attention_weights_of_beam_search_captions():
    model = tiny_model(vocab_size=20)
    features = random_grids(4, seed=2)
    result = beam_search.beam_search(model, features, beam_size=3, max_length=6)
    best, lengths = result.token_ids[:, 0], result.lengths[:, 0].numpy()
    assert min(lengths) < 6, 'the fixture should have a caption shorter than max_length'

    weights = model.attention_weights(features, best).numpy()
    assert weights.shape == (4, 6, GRID_CELLS) and weights.dtype == np.float32
    for image, length in enumerate(lengths):
        np.testing.assert_allclose(weights[image, :length].sum(-1), np.ones(length), rtol=1e-6)
        assert not weights[image, length:].any()
        # Row t is what the step choosing word t read: the forward pass over [START, w1 .. w(t-1)].
        input_ids = np.concatenate([[START_ID], best[image, :length - 1]])[None]
        _, attention = model((features[image:image + 1], input_ids), return_attention=True)
        np.testing.assert_allclose(weights[image, :length], attention[0], atol=1e-6)


def test_doubly_stochastic_penalty_by_hand():
    # Targets: 3 real steps, then padding whose weights must not count.
    target_ids = np.array([[4, 5, END_ID, PAD_ID]] * 3, np.int32)
    pad_row = [1.0, 0.0, 0.0]
    attention = np.array([
        # Each step on another cell: every cell sums to 1 over the caption.
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], pad_row],
        # Spread evenly: each cell gets 1/3 at each of the 3 steps.
        [[1 / 3] * 3] * 3 + [pad_row],
        # Every step on cell 0: sums (3, 0, 0), penalty (1 - 3)^2 + 1 + 1 = 6.
        [[1, 0, 0]] * 3 + [pad_row],
    ], np.float32)
    model = tiny_model(doubly_stochastic_weight=0.5)
    penalties = [float(model.doubly_stochastic_loss_sum(target_ids[i:i + 1], attention[i:i + 1])) for i in range(3)]
    assert penalties == pytest.approx([0.0, 0.0, 0.5 * 6])
    assert float(model.doubly_stochastic_loss_sum(target_ids, attention)) == pytest.approx(3.0)
    assert float(tiny_model(doubly_stochastic_weight=0.0).doubly_stochastic_loss_sum(target_ids, attention)) == 0.0


@pytest.mark.parametrize('alpha, inject_context', [(0.0, True), (0.7, True), (0.0, False)])
def test_wide_beam_equals_exhaustive_search(alpha, inject_context):
    assert_wide_beam_is_exhaustive(tiny_model(vocab_size=7, inject_context=inject_context), random_grids(2), alpha)


def test_beam_of_one_is_greedy_decoding():
    assert_beam_of_one_is_greedy(tiny_model(vocab_size=20, seed=4), random_grids(6, seed=1))


def test_batch_equals_one_image_at_a_time():
    assert_batch_equals_one_image_at_a_time(tiny_model(vocab_size=20), random_grids(5, seed=2))


def test_runs_in_exported_function_with_dynamic_batch(tmp_path):
    assert_runs_in_exported_function_with_dynamic_batch(
        tiny_model(vocab_size=20), [random_grids(batch, seed=batch) for batch in (5, 2)], tmp_path / 'export')


@pytest.mark.parametrize('inject_context', [True, False])
def test_tiny_model_overfits_distinct_captions(inject_context, training_seed):
    num_images, max_words, grid_cells, feature_dim = 10, 6, 4, 16
    rng = np.random.default_rng(training_seed)
    features = random_grids(num_images, seed=training_seed, grid_cells=grid_cells, feature_dim=feature_dim)
    words, captions = distinct_captions(rng, num_images, max_words)

    model = tiny_model(seed=training_seed, vocab_size=30, feature_dim=feature_dim, grid_cells=grid_cells,
                       embedding_size=32,
                       lstm_units=64, attention_units=16, initializer_scale=0.08, lstm_dropout_keep_prob=0.9,
                       inject_context=inject_context)
    optimizer = build_optimizer(TrainingConfig(optimizer='adam', learning_rate=0.01), steps_per_epoch=1)
    input_ids, target_ids = split_caption_ids(tf.constant(captions))

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            logits, attention = model((features, input_ids), training=True, return_attention=True)
            loss_sum, num_tokens = masked_loss_sum(target_ids, logits)
            penalty = model.doubly_stochastic_loss_sum(target_ids, attention)
            loss = (loss_sum + penalty) / num_tokens
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss_sum / num_tokens

    for _ in range(300):
        caption_loss = train_step()
    assert float(caption_loss) < 0.1

    for beam_size in (1, 3):
        result = beam_search.beam_search(model, features, beam_size=beam_size, max_length=max_words + 2)
        best = result.token_ids.numpy()[:, 0]
        reproduced = [np.array_equal(best[i, :max_words], words[i]) and not best[i, max_words:].any()
                      for i in range(num_images)]
        assert np.mean(reproduced) >= 0.9, (beam_size, best)
