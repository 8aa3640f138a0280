"""EMAGE FGD autoencoder: strict loading of the EMAGE-format checkpoint, numerical reproduction, IO errors, features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omniges.evaluation.evaluator import (
    SMPLX_PARENTS,
    VAESKConv,
    edge_neighbours,
    edge_topology,
    latents,
    load_evaluator,
    load_parents,
    pooling_plan,
    poses_to_rot6d,
    save_evaluator,
    train_evaluator,
)

FIXTURES = Path(__file__).parent / "fixtures" / "emage_evaluator"
CHECKPOINT = FIXTURES / "AESKConv_fixture.bin.xz"
KINTREE = FIXTURES / "smplx_kintree_table_55.npz"


@pytest.fixture(scope="module")
def evaluator() -> VAESKConv:
    return load_evaluator(CHECKPOINT, kintree_path=KINTREE)


def test_state_dict_matches_emage_manifest():
    manifest = json.loads((FIXTURES / "manifest.json").read_text())["keys"]
    state = VAESKConv().state_dict()
    assert set(state) == set(manifest)
    assert all(tuple(state[k].shape) == tuple(v["shape"]) for k, v in manifest.items())


def test_fixture_checkpoint_reproduces_reference_outputs(evaluator):
    io = np.load(FIXTURES / "AESKConv_fixture_io.npz")
    with torch.no_grad():
        latent = evaluator.map2latent(torch.from_numpy(io["x"]))
        decoded = evaluator.decode(latent)
    assert latent.shape == (1, 4, 240)
    np.testing.assert_allclose(latent.numpy(), io["map2latent"], atol=1e-5)
    np.testing.assert_allclose(decoded.numpy(), io["decode"], atol=1e-5)


def test_kintree_file_gives_standard_parents():
    assert load_parents(KINTREE) == SMPLX_PARENTS
    assert load_parents(None) == SMPLX_PARENTS


def test_module_prefix_is_stripped_and_save_roundtrips(tmp_path):
    torch.manual_seed(0)
    model = VAESKConv()
    prefixed = tmp_path / "ddp.bin"
    torch.save({"model_state": {f"module.{k}": v for k, v in model.state_dict().items()}}, prefixed)
    loaded = load_evaluator(prefixed)
    x = torch.randn(1, 32, 330)
    with torch.no_grad():
        torch.testing.assert_close(loaded.map2latent(x), model.eval().map2latent(x))
    saved = save_evaluator(loaded, tmp_path / "plain.bin")
    assert set(torch.load(saved, weights_only=True)) == {"model_state"}
    assert not any(k.startswith("module.") for k in torch.load(saved, weights_only=True)["model_state"])


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = VAESKConv().state_dict()
    state.pop("fc_mu.bias")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.bin"
    torch.save({"model_state": state}, path)
    with pytest.raises(ValueError, match=r"missing keys: \['fc_mu.bias'\].*unexpected keys: \['extra.weight'\]"):
        load_evaluator(path)
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match="model_state"):
        load_evaluator(path)
    with pytest.raises(FileNotFoundError):
        load_evaluator(tmp_path / "nope.bin")


def test_topology_levels_match_emage():
    edges = edge_topology(SMPLX_PARENTS)
    assert len(edges) == 55 and edges[0] == (0, 55) and edges[22] == (15, 22)
    counts = [len(edges)]
    for last in (False, False, False, True):
        groups, edges = pooling_plan(edges, last)
        counts.append(len(groups))
    assert counts == [55, 35, 20, 20, 20]


def test_neighbours_and_pooling_on_a_chain():
    # chain 0-1-2-3: edges e0=(0,4) virtual, e1=(0,1), e2=(1,2), e3=(2,3)
    edges = edge_topology((-1, 0, 1, 2))
    assert edge_neighbours(edges, 1) == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]]
    assert edge_neighbours(edges, 2) == [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3], [1, 2, 3]]
    groups, new_edges = pooling_plan(edges, last_pool=False)
    assert groups == [[0], [1], [2, 3]] and new_edges == [(0, 4), (0, 1), (1, 3)]


def test_pooling_matrix_averages_groups():
    pool = VAESKConv().encoder.layers[0][0].common[0].weight
    assert pool.shape == (210, 330)
    np.testing.assert_allclose(pool.sum(1).numpy(), 1.0)
    assert set(np.unique(pool.numpy()).round(3)) <= {0.0, 0.5, 1.0}


def test_latents_cut_to_multiple_of_32(evaluator):
    motion = poses_to_rot6d(np.zeros((100, 165)))
    np.testing.assert_allclose(motion[0, :6], [1, 0, 0, 0, 1, 0])
    assert latents(evaluator, motion).shape == (6, 240)  # 100 -> 96 frames -> 96 / 16
    assert latents(evaluator, motion[:31]).shape == (0, 240)
    # GroupNorm normalises over time, so a clip's features depend on the whole (cut) clip: EMAGE encodes it whole
    moving = poses_to_rot6d(np.random.default_rng(0).normal(0, 0.3, (96, 165)))
    assert not np.allclose(latents(evaluator, moving)[:2], latents(evaluator, moving[:32]), atol=1e-3)


def test_training_reduces_reconstruction_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    poses = np.cumsum(rng.normal(0, 0.02, (2, 16, 165)), axis=1)
    windows = np.stack([poses_to_rot6d(p) for p in poses])
    result = train_evaluator(VAESKConv(), windows, steps=4, batch_size=2, lr=1e-3, progress=False)
    history = result["loss_history"]
    assert len(history) == 4 and history[-1] < 0.8 * history[0]
