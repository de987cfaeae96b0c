"""The training loop on real TFRecords: learning, TensorBoard, checkpoints and resume, strategies, precision."""
import dataclasses
import glob
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from img2txt.model import evaluation as model_evaluation, training
from img2txt.model.config import TrainingConfig
from img2txt.model.networks import decoders
from img2txt.model.networks.attention import AttentionConfig, ShowAttendAndTell
from img2txt.model.networks.caption_ops import masked_loss_sum
from img2txt.model.serving import beam_search
from img2txt.model.training import caption_validation, checkpoints, distribution, input_pipeline
from img2txt.schemas import decoders as decoder_names
from img2txt.schemas import evaluation, manifest, training_run
from training_data import random_images, write_training_data

TINY = dict(embedding_size=16, lstm_units=16)
# Per decoder: tiny model options, and the model's recurrent layer (whose dtype policy shows the precision).
TINY_OPTIONS = {decoder_names.SHOW_AND_TELL: TINY, decoder_names.ATTENTION: dict(TINY, attention_units=8)}
RECURRENT_LAYER = {decoder_names.SHOW_AND_TELL: 'lstm', decoder_names.ATTENTION: 'lstm_cell'}


def scalars(model_dir, split):
    """{tag: {step: value}} of the TensorBoard event files of one split."""
    values = {}
    for path in glob.glob(os.path.join(model_dir, training_run.LOG_DIR, split, 'events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == 'scalars'
                values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def saved_config(model_dir):
    with open(os.path.join(model_dir, training_run.CONFIG_FILE)) as f:
        return json.load(f)


def checkpoint_dir(model_dir):
    return os.path.join(model_dir, training_run.CHECKPOINT_DIR)


def weights(model):
    return [v.numpy() for v in model.weights]


@pytest.fixture
def exports(monkeypatch):
    """Stands in for model.serving.export (its own tests cover it, with a real encoder): records the calls."""
    calls = []

    def export_model(model, model_config, document, data_dir, export_dir):
        calls.append((model, model_config, export_dir))
        os.makedirs(export_dir)
        return f'show_and_tell@{len(calls):012d}'

    monkeypatch.setattr(training.loop, 'export_model', export_model)
    return calls


@pytest.fixture(scope='module')
def images():
    return random_images(8, 1, feature_dim=16)


@pytest.fixture(scope='module')
def overfit(tmp_path_factory, images, training_seed):
    """A model trained until it knows 8 images' captions; the val split is the same images."""
    root = tmp_path_factory.mktemp('overfit')
    data = write_training_data(root / 'data', {'train': images, 'val': images})
    config = TrainingConfig(batch_size=8, optimizer='adam', learning_rate=0.01, num_epochs=100,
                            log_every_steps=25, validation_every_steps=50, checkpoint_every_steps=40,
                            seed=training_seed)
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        calls = []
        mp.setattr(training.loop, 'export_model', lambda *args: calls.append(args) or 'show_and_tell@000000000001')
        result = training.train(data, str(root / 'model'), dict(embedding_size=64, lstm_units=64,
                                                                lstm_dropout_keep_prob=0.9),
                                config, log=lines.append)
    return result, str(root / 'model'), data, lines, calls


def test_trained_model_reproduces_its_captions(overfit, images):
    result, *_ = overfit
    assert result.step == 100 and result.interrupted_by is None
    features = np.stack([f for _, f, _ in images])
    found = beam_search.beam_search(result.model, features, beam_size=3, max_length=8)
    best = [list(ids[0, :length[0]]) for ids, length in zip(found.token_ids.numpy(), found.lengths.numpy())]
    reproduced = [b == captions[0] for b, (_, _, captions) in zip(best, images)]
    assert np.mean(reproduced) >= 0.9, list(zip(best, [c[0] for _, _, c in images]))
    assert result.val_loss < 0.05 and result.val_perplexity == pytest.approx(np.exp(result.val_loss))


def test_progress_tensorboard_and_config(overfit):
    result, model_dir, data, lines, _ = overfit
    assert lines[0].startswith('step 25/100 (epoch 25.00): loss ')
    assert any(line.startswith('validation at step 100: loss ') for line in lines)
    loss, perplexity = training_run.LOSS, training_run.PERPLEXITY
    train = scalars(model_dir, training_run.TRAIN_LOGS)
    assert set(train) == {loss, perplexity, training_run.LEARNING_RATE, training_run.STEPS_PER_SECOND,
                          training_run.CAPTIONS_PER_SECOND}
    assert sorted(train[loss]) == [25, 50, 75, 100]
    assert train[loss][100] < train[loss][25]
    assert train[perplexity][100] == pytest.approx(np.exp(train[loss][100]), rel=1e-5)
    assert train[training_run.LEARNING_RATE][25] == pytest.approx(0.01)
    val = scalars(model_dir, training_run.VALIDATION_LOGS)
    assert sorted(val[loss]) == [50, 100]
    assert val[loss][100] == pytest.approx(result.val_loss, rel=1e-6)
    assert val[perplexity][100] == pytest.approx(result.val_perplexity, rel=1e-5)

    saved = saved_config(model_dir)
    model, training_config = saved[training_run.MODEL], saved[training_run.TRAINING]
    assert model['vocab_size'] == 20 and model['feature_dim'] == 16
    assert model['lstm_units'] == 64 and training_config['optimizer'] == 'adam'
    assert saved[training_run.DATA] == data
    assert saved[training_run.ENCODER][manifest.ENCODER_ID] == 'efficientnet_lite0@test'
    assert saved[training_run.PRECISION_POLICY] == 'float32'
    assert saved[training_run.STRATEGY][training_run.STRATEGY_REPLICAS] == 1
    assert [os.path.basename(p) for p in sorted(glob.glob(os.path.join(checkpoint_dir(model_dir), '*.index')))] == [
        f'{training_run.CHECKPOINT_PREFIX}-{step}.index' for step in (100, 40, 80)]


def test_export_gets_the_checkpointed_model(overfit):
    result, model_dir, data, lines, calls = overfit
    [(model, model_config, document, data_dir, export_dir)] = calls
    assert export_dir == os.path.join(model_dir, training_run.EXPORT_DIR, '100') == result.export_dir
    assert data_dir == data and document[manifest.ENCODER][manifest.ENCODER_NAME] == 'efficientnet_lite0'
    assert model is not result.model and model.dtype_policy.name == 'float32'
    for restored, trained in zip(weights(model), weights(result.model)):
        np.testing.assert_array_equal(restored, trained)
    assert model_config == result.model.config
    assert result.model_id == 'show_and_tell@000000000001'


@pytest.fixture(scope='module')
def resumable(tmp_path_factory):
    """8 images with 2 captions each, one caption per epoch, batches of 3 (epochs end mid-batch).

    The records hold 2x2 spatial maps and their means: data for either decoder.
    """
    return write_training_data(tmp_path_factory.mktemp('resumable'),
                               {'train': random_images(8, 2, feature_dim=16, grid=(2, 2))})


# SGD at im2txt's rate halves every int(8 / 3 * 1) = 2 steps; dropout is on.
RESUME_CONFIG = dict(batch_size=3, captions_per_image='one', num_epochs_per_decay=1.0, num_epochs=100,
                     checkpoint_every_steps=2, log_every_steps=1, seed=7)


@pytest.mark.parametrize('decoder', decoder_names.NAMES)
def test_resumed_run_continues_the_schedule_and_ends_like_an_uninterrupted_one(resumable, tmp_path, exports,
                                                                              decoder):
    def train(model_dir, max_steps, **options):
        return training.train(resumable, model_dir, TINY_OPTIONS[decoder],
                              TrainingConfig(max_steps=max_steps, **RESUME_CONFIG), decoder=decoder, **options)

    interrupted = str(tmp_path / 'interrupted')
    first = train(interrupted, 5)
    assert (first.step, first.start_step) == (5, 0)
    assert tf.train.latest_checkpoint(checkpoint_dir(interrupted)).endswith(f'{training_run.CHECKPOINT_PREFIX}-5')
    lines = []
    resumed = train(interrupted, 9, log=lines.append)
    assert (resumed.step, resumed.start_step) == (9, 5)
    assert lines[0].startswith('resuming from step 5 (')
    rates = scalars(interrupted, training_run.TRAIN_LOGS)[training_run.LEARNING_RATE]
    assert sorted(rates) == list(range(1, 10))
    for step, rate in rates.items():  # The rate for the step after `step`.
        assert rate == pytest.approx(2.0 * 0.5 ** (step // 2)), step
    assert [e[2] for e in exports] == [os.path.join(interrupted, training_run.EXPORT_DIR, '5'),
                                       os.path.join(interrupted, training_run.EXPORT_DIR, '9')]

    straight = train(str(tmp_path / 'straight'), 9)
    # Same data, same dropout masks, same updates: bit for bit on a CPU.
    for a, b in zip(weights(resumed.model), weights(straight.model)):
        np.testing.assert_array_equal(a, b)

    mirrored = train(str(tmp_path / 'mirrored'), 9, strategy='mirrored')
    assert saved_config(tmp_path / 'mirrored')[training_run.STRATEGY] == {
        training_run.STRATEGY_NAME: 'MirroredStrategy', training_run.STRATEGY_REPLICAS: 1}
    assert mirrored.train_loss == pytest.approx(straight.train_loss, rel=1e-5)
    for a, b in zip(weights(mirrored.model), weights(straight.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_refuses_to_resume_another_model(resumable, tmp_path, exports):
    model_dir = str(tmp_path / 'model')
    training.train(resumable, model_dir, TINY, TrainingConfig(max_steps=1, **RESUME_CONFIG))
    with pytest.raises(ValueError, match=r'holds checkpoints of another model \(model.lstm_units 16 -> 32\)'):
        training.train(resumable, model_dir, {**TINY, 'lstm_units': 32}, TrainingConfig(max_steps=2, **RESUME_CONFIG))
    with pytest.raises(ValueError, match=r"training.optimizer 'sgd' -> 'adam'"):
        training.train(resumable, model_dir, TINY, TrainingConfig(max_steps=2, optimizer='adam',
                                                                  **RESUME_CONFIG))
    with pytest.raises(ValueError, match=r"\['vocab_size'\] come from the training data"):
        training.train(resumable, str(tmp_path / 'other'), {'vocab_size': 30})
    with pytest.raises(FileNotFoundError, match='has no manifest.json'):
        training.train(str(tmp_path / 'nowhere'), model_dir)
    with pytest.raises(ValueError, match=r'holds checkpoints of the show_and_tell decoder, not attention: .*'
                                         r'--decoder show_and_tell'):
        training.train(resumable, model_dir, TINY, TrainingConfig(max_steps=2, **RESUME_CONFIG),
                       decoder='attention')
    with pytest.raises(ValueError, match=r"unknown ShowAndTellConfig fields \['attention_units'\]"):
        training.train(resumable, str(tmp_path / 'other'), TINY_OPTIONS['attention'])
    with pytest.raises(ValueError, match=r"\['grid_cells'\] come from the training data"):
        training.train(resumable, str(tmp_path / 'other'), {'grid_cells': 4}, decoder='attention')


# How a test changes each config field that decides a decoder's weights: the data's fields come from
# another preprocess output, the others are flags.
DATA_CHANGES = {'vocab_size': dict(vocab_size=24), 'feature_dim': dict(feature_dim=12), 'grid_cells': dict(grid=(3, 2))}


@pytest.mark.parametrize('decoder,field', [(d.name, field) for d in decoders.ENTRIES for field in d.shape_fields])
def test_resuming_with_any_shape_field_changed_is_refused_on_one_line_before_anything_is_written(
        resumable, tmp_path, exports, decoder, field):
    model_dir = tmp_path / 'model'
    options = TINY_OPTIONS[decoder]
    training.train(resumable, str(model_dir), options, TrainingConfig(max_steps=1, **RESUME_CONFIG), decoder=decoder)
    config_before = (model_dir / training_run.CONFIG_FILE).read_bytes()
    files_before = sorted(p.relative_to(model_dir) for p in model_dir.rglob('*'))
    if field in training.DATA_MODEL_FIELDS:
        data, changed = write_training_data(tmp_path / 'other-data', {'train': random_images(
            8, 2, **{'feature_dim': 16, 'grid': (2, 2), **DATA_CHANGES[field]})},
            vocab_size=DATA_CHANGES[field].get('vocab_size', 20)), options
    else:
        value = getattr(decoders.get(decoder).config_class(vocab_size=20, feature_dim=16, **options), field)
        data, changed = resumable, {**options, field: (not value) if isinstance(value, bool) else value + 1}
    refused = rf'holds checkpoints of another model \(model\.{field} \S+ -> \S+\)'
    with pytest.raises(ValueError, match=refused) as refusal:
        training.train(data, str(model_dir), changed, TrainingConfig(max_steps=2, **RESUME_CONFIG), decoder=decoder)
    assert '\n' not in str(refusal.value)
    assert (model_dir / training_run.CONFIG_FILE).read_bytes() == config_before
    assert sorted(p.relative_to(model_dir) for p in model_dir.rglob('*')) == files_before


def test_attention_needs_spatial_maps(overfit, tmp_path):
    _, _, pooled_only, _, _ = overfit
    with pytest.raises(ValueError, match=r'^\S+ has no spatial feature maps, .*: rerun preprocess with '
                                         r'--spatial-features$'):
        training.train(pooled_only, str(tmp_path / 'model'), decoder='attention')
    assert not os.path.exists(tmp_path / 'model')


@pytest.mark.parametrize('decoder', decoder_names.NAMES)
@pytest.mark.parametrize('policy', ['mixed_bfloat16', 'mixed_float16'])
def test_mixed_precision(resumable, tmp_path, exports, monkeypatch, policy, decoder):
    # Without a GPU train picks bfloat16; float16 with loss scaling (the GPU choice) also runs on a CPU.
    monkeypatch.setattr(distribution, 'precision_policy', lambda mixed_precision: policy)
    result = training.train(resumable, str(tmp_path / 'model'), TINY_OPTIONS[decoder],
                            TrainingConfig(max_steps=4, **RESUME_CONFIG), decoder=decoder, mixed_precision=True)
    assert getattr(result.model, RECURRENT_LAYER[decoder]).compute_dtype == policy.split('_')[1]
    assert all(v.dtype == 'float32' for v in result.model.trainable_variables)
    assert np.isfinite(result.train_loss)
    [(exported, _, _)] = exports
    assert getattr(exported, RECURRENT_LAYER[decoder]).compute_dtype == 'float32'
    assert saved_config(tmp_path / 'model')[training_run.PRECISION_POLICY] == policy


# Two logical CPUs must be configured before TensorFlow starts, so this runs in a fresh process.
# Batches of 5 split 3 + 2 over the replicas, so their token counts differ. Plain SGD shows a
# wrong gradient scale (replicas summed twice, say); a clipping norm below every gradient's norm
# shows a wrong direction (each replica's part clipped alone, or losses averaged per replica).
_TWO_REPLICAS = textwrap.dedent('''
    import json
    import sys
    import numpy as np
    import tensorflow as tf
    [cpu] = tf.config.list_physical_devices('CPU')
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from img2txt.model import training
    from img2txt.model.config import TrainingConfig
    from img2txt.schemas import training_run
    data, model_dir, decoder, options = sys.argv[1:]
    options = dict(json.loads(options), lstm_dropout_keep_prob=1.0)
    for clip in (0.0, 0.01):
        config = TrainingConfig(batch_size=5, max_steps=3, clip_gradients=clip, learning_rate=1.0, seed=3)
        one = training.train(data, f'{model_dir}/one{clip}', options, config, decoder=decoder, strategy='default',
                             export=False)
        two = training.train(data, f'{model_dir}/two{clip}', options, config, decoder=decoder, strategy='mirrored',
                             export=False)
        saved = json.load(open(f'{model_dir}/two{clip}/{training_run.CONFIG_FILE}'))
        assert saved[training_run.STRATEGY][training_run.STRATEGY_REPLICAS] == 2
        for a, b in zip(one.model.weights, two.model.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    print('same weights')
''')


@pytest.mark.parametrize('decoder', decoder_names.NAMES)
def test_two_replicas_train_like_one(resumable, tmp_path, decoder):
    result = subprocess.run([sys.executable, '-c', _TWO_REPLICAS, resumable, str(tmp_path), decoder,
                             json.dumps(TINY_OPTIONS[decoder])], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and 'same weights' in result.stdout, result.stderr[-3000:]


@pytest.fixture(scope='module')
def attention_run(tmp_path_factory, training_seed):
    """An attention model trained on 8 images' 3x3 maps; the val split is the same images."""
    root = tmp_path_factory.mktemp('attention')
    images = random_images(8, 1, feature_dim=8, grid=(3, 3))
    data = write_training_data(root / 'data', {'train': images, 'val': images}, spatial_dtype='float16')
    config = TrainingConfig(batch_size=8, optimizer='adam', learning_rate=0.01, num_epochs=60,
                            log_every_steps=10, validation_every_steps=30, checkpoint_every_steps=30,
                            seed=training_seed)
    lines, calls = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training.loop, 'export_model', lambda *args: calls.append(args) or 'attention@000000000001')
        result = training.train(data, str(root / 'model'), dict(TINY, attention_units=16), config,
                                decoder='attention', log=lines.append)
    return result, str(root / 'model'), lines, calls


def test_attention_training_learns_and_writes_its_run(attention_run):
    result, model_dir, lines, calls = attention_run
    assert result.step == 60 and isinstance(result.model, ShowAttendAndTell)
    train = scalars(model_dir, training_run.TRAIN_LOGS)[training_run.LOSS]
    assert sorted(train) == [10, 20, 30, 40, 50, 60]
    assert train[60] < 0.5 * train[10]
    val = scalars(model_dir, training_run.VALIDATION_LOGS)[training_run.LOSS]
    assert sorted(val) == [30, 60] and val[60] == pytest.approx(result.val_loss, rel=1e-6)
    assert result.val_loss < train[10]
    assert any(line.startswith('validation at step 60: loss ') for line in lines)

    saved = saved_config(model_dir)
    assert saved[training_run.DECODER] == decoder_names.ATTENTION
    model = saved[training_run.MODEL]
    assert (model['grid_cells'], model['feature_dim'], model['vocab_size']) == (9, 8, 20)
    assert model['attention_units'] == 16 and model['gate'] is True
    assert AttentionConfig.from_dict(model) == result.model.config
    assert [os.path.basename(p) for p in sorted(glob.glob(os.path.join(checkpoint_dir(model_dir), '*.index')))] == [
        f'{training_run.CHECKPOINT_PREFIX}-{step}.index' for step in (30, 60)]

    # Export gets the checkpoint rebuilt as the attention model, with its AttentionConfig.
    [(exported, model_config, _, _, export_dir)] = calls
    assert isinstance(exported, ShowAttendAndTell) and model_config == result.model.config
    assert export_dir == os.path.join(model_dir, training_run.EXPORT_DIR, '60')
    for restored, trained in zip(weights(exported), weights(result.model)):
        np.testing.assert_array_equal(restored, trained)


def test_attention_step_minimises_cross_entropy_plus_doubly_stochastic_penalty(resumable, tmp_path):
    # One SGD step on the whole split at rate 1, without dropout or clipping: the weights move by
    # minus the gradient of (cross-entropy sum + penalty sum) / tokens, computed here independently.
    options = dict(TINY_OPTIONS['attention'], lstm_dropout_keep_prob=1.0, doubly_stochastic_weight=3.0)
    config = TrainingConfig(batch_size=8, max_steps=1, captions_per_image='one', learning_rate=1.0,
                            clip_gradients=0.0, seed=5)
    result = training.train(resumable, str(tmp_path / 'model'), options, config, decoder='attention', export=False)

    keras.utils.set_random_seed(config.seed)
    model = ShowAttendAndTell(result.model.config)
    [((features, input_ids), target_ids)] = input_pipeline.make_dataset(
        resumable, 'train', 8, training=True, seed=config.seed, captions_per_image='one', spatial=True).take(1)
    with tf.GradientTape() as tape:
        logits, attention = model((features, input_ids), return_attention=True)
        loss_sum, num_tokens = masked_loss_sum(target_ids, logits)
        penalty = model.doubly_stochastic_loss_sum(target_ids, attention)
        loss = (loss_sum + penalty) / num_tokens
    assert float(penalty) > 0.01 * float(loss_sum)  # Large enough to show in the step.
    gradients = tape.gradient(loss, model.trainable_variables)
    trained = {v.path: v.numpy() for v in result.model.trainable_variables}
    for variable, gradient in zip(model.trainable_variables, gradients):
        np.testing.assert_allclose(trained[variable.path], variable.numpy() - tf.convert_to_tensor(gradient).numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=variable.path)


@pytest.fixture(scope='module')
def captioned(tmp_path_factory, training_seed):
    """A run with caption validation every 10 steps on 8 images whose val split is themselves, exported 'best'."""
    root = tmp_path_factory.mktemp('captioned')
    images = random_images(8, 2, feature_dim=16)
    data = write_training_data(root / 'data', {'train': images, 'val': images})
    config = TrainingConfig(batch_size=8, optimizer='adam', learning_rate=0.01, max_steps=40, num_epochs=100,
                            log_every_steps=10, validation_every_steps=20, checkpoint_every_steps=20,
                            caption_validation_every_steps=10, seed=training_seed)
    lines, calls = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training.loop, 'export_model', lambda *args: calls.append(args) or 'show_and_tell@000000000001')
        result = training.train(data, str(root / 'model'), TINY, config, log=lines.append)
    return result, str(root / 'model'), data, images, config, lines, calls


def test_caption_validation_keeps_and_exports_the_checkpoint_with_the_best_cider(captioned):
    result, model_dir, _, _, _, lines, calls = captioned
    cider = scalars(model_dir, training_run.VALIDATION_LOGS)[evaluation.CIDER_D]
    assert sorted(cider) == [10, 20, 30, 40]
    assert {evaluation.BLEU[3], evaluation.METEOR} <= set(scalars(model_dir, training_run.VALIDATION_LOGS))
    assert sum(line.startswith('val captions at step ') for line in lines) == 4
    best_step = max(cider, key=lambda step: (cider[step], -step))  # the first of equals
    assert result.best_step == best_step
    assert result.best_metrics[evaluation.CIDER_D] == pytest.approx(cider[best_step], rel=1e-6)
    with open(os.path.join(model_dir, training_run.BEST_DIR, training_run.BEST_FILE)) as f:
        assert json.load(f) == {training_run.BEST_STEP: best_step, training_run.BEST_METRICS: result.best_metrics}
    assert glob.glob(os.path.join(model_dir, training_run.BEST_DIR, f'{training_run.CHECKPOINT_PREFIX}-*.index')) == [
        os.path.join(model_dir, training_run.BEST_DIR, f'{training_run.CHECKPOINT_PREFIX}-{best_step}.index')]
    # The export is that checkpoint's weights, under its step.
    [(exported, _, _, _, export_dir)] = calls
    assert export_dir == os.path.join(model_dir, training_run.EXPORT_DIR, str(best_step)) == result.export_dir
    best_model, _ = checkpoints.restore_model(model_dir, best=True)
    for restored, kept in zip(weights(exported), weights(best_model)):
        np.testing.assert_array_equal(restored, kept)
    assert any(line.startswith(f'exported the best checkpoint by val CIDEr-D (step {best_step})') for line in lines)


def test_caption_validation_scores_the_beam_search_captions_against_the_records(captioned):
    result, _, data, images, config, _, _ = captioned
    vocab = input_pipeline.read_vocabulary(data, input_pipeline.read_manifest(data))
    validation = caption_validation.CaptionValidation(result.model, data, 'val', vocab, spatial=False, beam_size=3,
                                                      max_length=20, batch_size=3)
    found = beam_search.beam_search(result.model, np.stack([f for _, f, _ in images]), 3, 20, top_k=1)
    expected = dict(zip([image_id for image_id, _, _ in images],
                        [best.decode('utf-8') for [best] in beam_search.texts(found.token_ids, vocab).numpy()]))
    assert validation.captions() == expected
    references = {image_id: [' '.join(vocab[i] for i in caption) for caption in captions]
                  for image_id, _, captions in images}
    assert validation() == model_evaluation.score(expected, references)[0]


def test_a_resumed_run_keeps_the_best_of_both_and_latest_exports_the_last_step(captioned, tmp_path, exports):
    _, _, data, _, config, _, _ = captioned
    model_dir = str(tmp_path / 'model')
    first = training.train(data, model_dir, TINY, dataclasses.replace(config, max_steps=20), export=False)
    second = training.train(data, model_dir, TINY, dataclasses.replace(config, export_checkpoint='latest'))
    cider = scalars(model_dir, training_run.VALIDATION_LOGS)[evaluation.CIDER_D]
    assert sorted(cider) == [10, 20, 30, 40] and first.best_step in (10, 20)
    assert second.best_step == max(cider, key=lambda step: (cider[step], -step))
    [(_, _, export_dir)] = exports
    assert export_dir == os.path.join(model_dir, training_run.EXPORT_DIR, '40')


def test_caption_validation_needs_a_val_split(resumable, tmp_path):
    with pytest.raises(ValueError, match=r"--caption-validation-every-steps needs a 'val' split, and .* has \['train'\]"):
        training.train(resumable, str(tmp_path / 'model'), TINY,
                       TrainingConfig(max_steps=1, caption_validation_every_steps=1, **RESUME_CONFIG))
