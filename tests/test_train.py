"""Training loop: schedule, deterministic batches, EMA, and exact resume after a kill."""

import numpy as np
import pytest
import torch

from omniges.training.trainer import TrainConfig, Trainer, batch_indices, lr_lambda


class Toy(torch.utils.data.Dataset):
    def __init__(self, n=40):
        g = np.random.default_rng(0)
        self.x = g.normal(size=(n, 8)).astype(np.float32)
        self.y = (self.x @ g.normal(size=(8, 2))).astype(np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def collate(items):
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def loss_fn(model, batch, task, generator):
    noise = torch.randn(batch["x"].shape, generator=generator) * 0.01
    pred = model(batch["x"] + noise)
    loss = torch.nn.functional.mse_loss(pred, batch["y"])
    return {"loss": loss, "mse": loss}


def make(tmp_path, steps=12, num_workers=0):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.1), torch.nn.Linear(16, 2))
    config = TrainConfig(steps=steps, batch_size=8, lr=1e-2, warmup_steps=3, checkpoint_every=5, val_every=6,
                         log_every=2, tasks={"a2g": 0.5, "g2a": 0.5}, num_workers=num_workers)
    return Trainer(model, train_set=Toy(), val_set=Toy(), collate=collate, loss_fn=loss_fn, config=config,
                   out_dir=tmp_path)


def test_lr_schedule_and_batches():
    assert lr_lambda(0, warmup=4, total=100) == 0.25 and lr_lambda(3, warmup=4, total=100) == 1.0
    assert abs(lr_lambda(100, warmup=4, total=100) - 0.1) < 1e-9
    epoch = [i for s in range(5) for i in batch_indices(s, size=40, batch_size=8, seed=1)]
    assert sorted(epoch) == list(range(40))  # one epoch visits every window once
    assert batch_indices(0, size=40, batch_size=8, seed=1, rank=1, world=2) == \
        batch_indices(0, size=40, batch_size=16, seed=1)[8:]


def test_training_lowers_loss_and_logs(tmp_path):
    logged = []
    trainer = make(tmp_path, steps=60)
    trainer.log_metrics = lambda metrics, step: logged.append((step, metrics))
    first = trainer.validate()
    trainer.fit(progress=False)
    last = trainer.validate()
    assert last["val/a2g/loss"] < 0.5 * first["val/a2g/loss"]
    assert any("samples_per_second" in m and "lr" in m for _, m in logged)
    assert trainer.checkpoint_path.exists()


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    straight = make(tmp_path / "a")
    straight.fit(progress=False)
    killed = make(tmp_path / "b")
    killed.fit(stop_after=5, progress=False)  # checkpoint at step 5, then the process "dies"
    resumed = make(tmp_path / "b")
    assert resumed.resume() and resumed.step == 5
    resumed.fit(progress=False)
    for key, value in straight.state()["model"].items():
        torch.testing.assert_close(resumed.state()["model"][key], value, rtol=0, atol=0)
    for key, value in straight.ema.shadow.items():
        torch.testing.assert_close(resumed.ema.shadow[key], value, rtol=0, atol=0)


def test_loader_workers_build_the_batches_of_the_training_loop_and_resume_exactly(tmp_path):
    trainer = make(tmp_path / "a", steps=12)
    shards = list(trainer.loader(12))
    assert len(shards) == 12
    for step, batch in enumerate(shards):
        expected = collate([trainer.train_set[i] for i in batch_indices(step, size=40, batch_size=8, seed=0)])
        torch.testing.assert_close(batch["x"], expected["x"], rtol=0, atol=0)
    inline = make(tmp_path / "b")
    for _ in range(12):
        inline.train_step()  # batches built in the loop, no DataLoader
    killed = make(tmp_path / "c", num_workers=2)
    killed.fit(stop_after=5, progress=False)
    resumed = make(tmp_path / "c", num_workers=2)
    assert resumed.resume() and resumed.loader(12).batch_sampler.start == 5
    resumed.fit(progress=False)
    for key, value in inline.state()["model"].items():
        torch.testing.assert_close(resumed.state()["model"][key], value, rtol=0, atol=0)


def test_latent_velocity_loss_scores_token_to_token_changes_on_valid_steps():
    from omniges.training.losses import latent_velocity_loss

    target = torch.cumsum(torch.randn(2, 6, 4), dim=1)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    batch, rows = {"gesture": target, "gesture_mask": mask}, torch.tensor([True, True])
    assert latent_velocity_loss(target + 3.0, batch, rows, 1.0)["latent_vel"].item() < 1e-10  # offsets are free
    jitter = target.clone()
    jitter[:, 1::2] += 0.5
    assert latent_velocity_loss(jitter, batch, rows, 2.0)["latent_vel"].item() == pytest.approx(2 * 0.25)
    padded = target.clone()
    padded[1, 4:] += 100.0  # changes only in padding
    assert latent_velocity_loss(padded, batch, rows, 1.0)["latent_vel"].item() < 1e-10
