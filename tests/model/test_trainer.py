"""The training loop: it learns, it is deterministic, it checkpoints and resumes exactly, its parts swap."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tracesynth.errors import ConfigError, UserError
from tracesynth.model.checkpoints import INDEX, list_checkpoints
from tracesynth.model.dgan import DoppelGANger
from tracesynth.model.trainer import Trainer, critic_step, per_batch, resolve_device, train

from ._tiny import ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, encoded_flows, tiny_model_cfg, tiny_training_cfg

torch.set_num_threads(1)


def _model(seed: int = 0) -> DoppelGANger:
    return DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(), seed=seed)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _losses(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")} for h in history]


def test_generator_learns_an_easy_target_and_losses_are_finite():
    data = encoded_flows(256, seed=0)
    data["attributes"][:, :2] = [1.0, 0.0]  # every real flow has its first IP bit = 0
    model = _model()
    before = (model.generate(500, torch.Generator().manual_seed(1))[0][:, 0] > 0.5).mean()
    result = train(model, data, tiny_training_cfg(), epochs=10, seed=0)
    after = (model.generate(500, torch.Generator().manual_seed(1))[0][:, 0] > 0.5).mean()
    assert before < 0.2 and after > 0.5
    assert len(result.history) == 10 and result.history[-1]["steps"] == 256 // 32
    for h in result.history:
        assert all(np.isfinite(h[k]) for k in ("d_loss", "attr_d_loss", "g_loss", "d_gp", "d_wasserstein"))
    # the critic separates real from fake better than at the start
    assert result.history[-1]["d_wasserstein"] > result.history[0]["d_wasserstein"]


def test_critic_learns_to_tell_real_from_fake():
    """With the generator fixed, repeated critic updates push the Wasserstein estimate up."""
    data = encoded_flows(64, seed=1)
    model = _model(seed=4)
    trainer = Trainer(model, tiny_training_cfg())
    attrs, records = trainer._tensors(data)
    gen = torch.Generator().manual_seed(0)
    trainer.loss_fn.generator = gen
    with torch.no_grad():
        f_attrs, f_records, _ = model.sample(64, gen)
    estimates = [float(critic_step(model.critic, trainer.opt_d, (records, attrs), (f_records, f_attrs),
                                   trainer.loss_fn)["wasserstein"]) for _ in range(60)]
    assert estimates[-1] > estimates[0] + 0.5 and min(estimates[-10:]) > 0.5


def test_same_seed_gives_same_weights():
    data = encoded_flows(96, seed=2)
    runs = []
    for _ in range(2):
        model = _model()
        result = train(model, data, tiny_training_cfg(), epochs=2, seed=11)
        runs.append((model.state_dict(), _losses(result.history)))
    assert _same_state(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    other = _model()
    train(other, data, tiny_training_cfg(), epochs=2, seed=12)
    assert not _same_state(runs[0][0], other.state_dict())


def test_interrupted_run_resumes_to_the_same_final_state(tmp_path: Path):
    """Guarantee: kill after a checkpoint + resume == uninterrupted run, bit for bit (same machine)."""
    data = encoded_flows(96, seed=3)
    cfg = tiny_training_cfg(checkpoint_every=2)
    full = _model()
    full_result = train(full, data, cfg, epochs=5, seed=1, checkpoint_dir=tmp_path / "full")
    assert sorted(full_result.checkpoints) == [2, 4, 5]  # every 2 epochs and the last

    def interrupt(event):
        if event.done == 4 and "d_loss" in event.info:
            raise KeyboardInterrupt  # as Ctrl-C right after epoch 4's checkpoint
    with pytest.raises(KeyboardInterrupt):
        train(_model(), data, cfg, epochs=5, seed=1, checkpoint_dir=tmp_path / "cut", callback=interrupt)
    assert sorted(list_checkpoints(tmp_path / "cut")) == [2, 4]
    resumed = _model()
    result = train(resumed, data, cfg, epochs=5, seed=1, checkpoint_dir=tmp_path / "cut")
    assert result.resumed_from == 4 and sorted(result.checkpoints) == [2, 4, 5]
    assert _same_state(full.state_dict(), resumed.state_dict())
    assert _losses(full_result.history) == _losses(result.history)
    assert not list((tmp_path / "cut").glob("*.part"))  # atomic writes leave no temporaries
    # resume=False starts over and drops the old checkpoints
    fresh = train(_model(), data, cfg, epochs=1, seed=1, checkpoint_dir=tmp_path / "cut", resume=False)
    assert fresh.resumed_from is None and sorted(list_checkpoints(tmp_path / "cut")) == [1]


def test_bad_checkpoints_and_inputs_are_user_errors(tmp_path: Path):
    data = encoded_flows(64, seed=4)
    cfg = tiny_training_cfg(checkpoint_every=1)
    train(_model(), data, cfg, epochs=1, seed=0, checkpoint_dir=tmp_path)
    (tmp_path / "epoch-00001.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="epoch-00001.pt.*unreadable"):
        train(_model(), data, cfg, epochs=2, seed=0, checkpoint_dir=tmp_path)
    (tmp_path / INDEX).write_text("{broken")
    with pytest.raises(UserError, match="index is corrupt"):
        train(_model(), data, cfg, epochs=2, seed=0, checkpoint_dir=tmp_path)
    # a checkpoint of another model shape is refused, not half-loaded
    other_dir = tmp_path / "other"
    train(_model(), data, cfg, epochs=1, seed=0, checkpoint_dir=other_dir)
    bigger = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(sample_len=4))
    with pytest.raises(UserError, match="different shape"):
        train(bigger, data, cfg, epochs=2, seed=0, checkpoint_dir=other_dir)
    with pytest.raises(UserError, match="fewer than training.batch_size"):
        train(_model(), encoded_flows(10), cfg, epochs=1)
    wrong = encoded_flows(64, max_len=6)
    with pytest.raises(UserError, match="rebuild the model"):
        train(_model(), wrong, cfg, epochs=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a machine without a GPU")
def test_cuda_requested_without_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="training.device.*no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="training.device"):
        Trainer(_model(), tiny_training_cfg(device="tpu"))


def test_progress_events_carry_training_figures():
    events = []
    train(_model(), encoded_flows(64, seed=5), tiny_training_cfg(), epochs=2, seed=0, callback=events.append,
          chunk=3)
    per_epoch = [e for e in events if "d_loss" in e.info]
    assert [e.done for e in per_epoch] == [1, 2] and all(e.stage == "train" and e.total == 2 for e in per_epoch)
    info = per_epoch[-1].info
    assert info["chunk"] == 3 and info["epoch"] == 2 and info["step"] == 2
    assert {"g_loss", "attr_d_loss", "samples_per_s", "eta_s"} <= info.keys() and info["eta_s"] == 0


def test_critic_update_and_batch_sampler_are_replaceable():
    """A Poisson-style source (sizes vary, 0 and 1 included) and a wrapped update run end to end."""
    calls = {"critic": 0, "sizes": []}

    def counting_update(critic, optimizer, real, fake, loss_fn):
        calls["critic"] += 1
        calls["sizes"].append((real[0].shape[0], fake[0].shape[0]))
        return critic_step(critic, optimizer, real, fake, loss_fn)

    gen = torch.Generator().manual_seed(0)
    sizes = iter([0, 1, 5, 40, 2, 33] * 10)

    def poisson_like() -> torch.Tensor:
        return torch.randperm(64, generator=gen)[:next(sizes)]

    result = train(_model(), encoded_flows(64, seed=6), tiny_training_cfg(), epochs=2, seed=0,
                   critic_update=counting_update, batch_sampler=per_batch(poisson_like))
    # 2 epochs x 2 generator steps x 2 critic steps, each updating both critics
    assert calls["critic"] == 2 * 2 * 2 * 2
    assert all(r == f for r, f in calls["sizes"]) and (0, 0) in calls["sizes"] and (1, 1) in calls["sizes"]
    assert np.isfinite(result.history[-1]["g_loss"])


def test_cpu_training_uses_one_thread_and_restores_the_callers_count(monkeypatch):
    """One torch thread by default (TRAIN_THREADS), `threads=` when the caller asks; never from the
    environment (TRACESYNTH_TORCH_THREADS is not read any more); the caller's count comes back."""
    monkeypatch.setenv("TRACESYNTH_TORCH_THREADS", "2")       # ignored: the thread count is a parameter
    seen = []
    torch.set_num_threads(2)
    try:
        train(_model(), encoded_flows(64, seed=1), tiny_training_cfg(), epochs=1, seed=0,
              callback=lambda event: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        seen.clear()
        train(_model(), encoded_flows(64, seed=1), tiny_training_cfg(), epochs=1, seed=0, threads=2,
              callback=lambda event: seen.append(torch.get_num_threads()))
        assert set(seen) == {2} and torch.get_num_threads() == 1
        with pytest.raises(UserError, match="training threads"):
            train(_model(), encoded_flows(64, seed=1), tiny_training_cfg(), epochs=1, threads=0)
    finally:
        torch.set_num_threads(1)
