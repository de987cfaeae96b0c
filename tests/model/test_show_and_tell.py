"""Tests of the model configuration and of the Show-and-Tell model."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from img2txt.model.config import TrainingConfig
from img2txt.model.networks.caption_ops import masked_loss, split_caption_ids
from img2txt.model.networks.show_and_tell import ShowAndTell, ShowAndTellConfig
from img2txt.model.serving import beam_search
from img2txt.model.training import build_optimizer
from img2txt.schemas.vocabulary import END_ID, PAD_ID, START_ID
from training_data import distinct_captions


def tiny_model(seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    values = dict(vocab_size=13, feature_dim=7, embedding_size=8, lstm_units=10)
    values.update(overrides)
    return ShowAndTell(ShowAndTellConfig(**values))


# Three captions [START, words, END, PAD ...] of different lengths.
CAPTIONS = np.array([
    [START_ID, 4, 5, 6, 7, END_ID],
    [START_ID, 8, END_ID, PAD_ID, PAD_ID, PAD_ID],
    [START_ID, 9, 10, 11, END_ID, PAD_ID],
], np.int32)


def test_config_defaults_are_im2txt_defaults():
    model = ShowAndTellConfig(vocab_size=100, feature_dim=1280)
    assert (model.embedding_size, model.lstm_units, model.lstm_dropout_keep_prob) == (512, 512, 0.7)
    assert (model.initializer_scale, model.max_caption_length, model.beam_size) == (0.08, 20, 3)
    assert model.length_normalization == 0.0
    training = TrainingConfig()
    assert (training.batch_size, training.optimizer, training.clip_gradients) == (32, 'sgd', 5.0)
    assert training.initial_learning_rate == 2.0
    assert (training.learning_rate_decay_factor, training.num_epochs_per_decay) == (0.5, 8.0)
    assert TrainingConfig(optimizer='adam').initial_learning_rate == 1e-3
    assert TrainingConfig(optimizer='adam', learning_rate=0.01).initial_learning_rate == 0.01


@pytest.mark.parametrize('config', [
    ShowAndTellConfig(vocab_size=100, feature_dim=1280, beam_size=5, length_normalization=0.6),
    TrainingConfig(optimizer='adam', learning_rate=3e-4, max_steps=100, seed=7),
])
def test_config_json_round_trip(config):
    restored = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config


def test_config_from_dict_names_unknown_and_missing_fields():
    values = ShowAndTellConfig(vocab_size=100, feature_dim=1280).to_dict()
    with pytest.raises(ValueError, match=r"unknown ShowAndTellConfig fields \['lstm_size'\]"):
        ShowAndTellConfig.from_dict({**values, 'lstm_size': 512})
    del values['vocab_size']
    with pytest.raises(ValueError, match=r"ShowAndTellConfig needs the fields \['vocab_size'\]"):
        ShowAndTellConfig.from_dict(values)
    with pytest.raises(ValueError, match='unknown TrainingConfig fields'):
        TrainingConfig.from_dict({'learning_rate_decay': 0.5})


@pytest.mark.parametrize('make, message', [
    (lambda: ShowAndTellConfig(vocab_size=0, feature_dim=8), 'vocab_size'),
    (lambda: ShowAndTellConfig(vocab_size=10, feature_dim=8, lstm_dropout_keep_prob=0.0), 'lstm_dropout_keep_prob'),
    (lambda: ShowAndTellConfig(vocab_size=10, feature_dim=8, length_normalization=-1.0), 'length_normalization'),
    (lambda: TrainingConfig(optimizer='rmsprop'), 'optimizer'),
    (lambda: TrainingConfig(max_steps=0), 'max_steps'),
])
def test_config_rejects_bad_values(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_split_caption_ids_and_masked_loss():
    input_ids, target_ids = split_caption_ids(tf.constant(CAPTIONS))
    np.testing.assert_array_equal(input_ids, CAPTIONS[:, :-1])
    np.testing.assert_array_equal(target_ids, CAPTIONS[:, 1:])

    logits = np.random.default_rng(0).normal(size=target_ids.shape + (13,)).astype(np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target_log_probs = np.take_along_axis(log_probs, np.asarray(target_ids)[..., None], -1)[..., 0]
    expected = -target_log_probs[CAPTIONS[:, 1:] != PAD_ID].mean()
    np.testing.assert_allclose(masked_loss(target_ids, logits), expected, rtol=1e-5)
    assert float(masked_loss(tf.zeros([2, 3], tf.int32), logits[:2, :3])) == 0.0


def test_forward_shapes_and_dropout_only_in_training():
    model = tiny_model()
    features = tf.random.stateless_normal([3, 7], seed=(1, 2))
    input_ids, _ = split_caption_ids(CAPTIONS)
    logits = model((features, input_ids))
    assert logits.shape == (3, 5, 13)
    np.testing.assert_array_equal(logits, model((features, input_ids)))
    assert not np.allclose(logits, model((features, input_ids), training=True))


def test_step_api_matches_training_forward():
    model = tiny_model(initializer_scale=0.5)
    features = tf.random.stateless_normal([3, 7], seed=(3, 4))
    input_ids, _ = split_caption_ids(CAPTIONS)
    expected = tf.nn.log_softmax(model((features, input_ids)))

    state = model.initial_state(features)
    assert [s.shape for s in state] == [(3, 10), (3, 10)]
    for t in range(input_ids.shape[1]):
        log_probs, state = model.step(input_ids[:, t], state)
        np.testing.assert_allclose(log_probs, expected[:, t], atol=1e-5)


def test_checkpoint_restores_model_and_optimizer(tmp_path):
    model = tiny_model(seed=1)
    optimizer = build_optimizer(TrainingConfig(optimizer='adam'), steps_per_epoch=10)
    features = tf.random.stateless_normal([3, 7], seed=(5, 6))
    input_ids, target_ids = split_caption_ids(CAPTIONS)
    with tf.GradientTape() as tape:
        loss = masked_loss(target_ids, model((features, input_ids), training=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / 'ckpt'))

    restored_model = tiny_model(seed=2)
    restored_optimizer = build_optimizer(TrainingConfig(optimizer='adam'), steps_per_epoch=10)
    restored_optimizer.build(restored_model.trainable_variables)
    tf.train.Checkpoint(model=restored_model, optimizer=restored_optimizer).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored_model((features, input_ids)), model((features, input_ids)))
    assert int(restored_optimizer.iterations) == 1


def test_build_optimizer_follows_im2txt_schedule():
    sgd = build_optimizer(TrainingConfig(), steps_per_epoch=100)
    assert isinstance(sgd, keras.optimizers.SGD)
    rates = []
    for step in (0, 799, 800, 1600):
        sgd.iterations.assign(step)
        rates.append(float(sgd.learning_rate))
    assert rates == [2.0, 2.0, 1.0, 0.5]
    adam = build_optimizer(TrainingConfig(optimizer='adam'), steps_per_epoch=100)
    assert isinstance(adam, keras.optimizers.Adam)
    assert float(adam.learning_rate) == pytest.approx(1e-3)


def test_tiny_model_overfits_distinct_captions(training_seed):
    num_images, max_words = 10, 6
    rng = np.random.default_rng(training_seed)
    features = rng.normal(size=(num_images, 16)).astype(np.float32)
    words, captions = distinct_captions(rng, num_images, max_words)

    model = tiny_model(seed=training_seed, vocab_size=30, feature_dim=16, embedding_size=64, lstm_units=64,
                       lstm_dropout_keep_prob=0.9)
    optimizer = build_optimizer(TrainingConfig(optimizer='adam', learning_rate=0.01), steps_per_epoch=1)
    input_ids, target_ids = split_caption_ids(tf.constant(captions))

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = masked_loss(target_ids, model((features, input_ids), training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for _ in range(300):
        loss = train_step()
    assert float(loss) < 0.1

    result = beam_search.beam_search(model, features, beam_size=3, max_length=max_words + 2)
    best = result.token_ids.numpy()[:, 0]
    reproduced = [np.array_equal(best[i, :max_words], words[i]) and not best[i, max_words:].any()
                  for i in range(num_images)]
    assert np.mean(reproduced) >= 0.9, best
