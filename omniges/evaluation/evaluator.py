"""EMAGE's FGD motion autoencoder (VAESKConv, `AESKConv_240_100.bin`), rebuilt so the real checkpoint loads strictly.

Architecture facts (EMAGE `models/motion_representation.py`, `motion_encoder.py`, `utils/skeleton.py`, mirrored in
GestureLSM): input is 55 joints x rot6d = 330 channels, unnormalised. The encoder is a skeleton-convolution network
over the SMPL-X edge graph (an extra virtual edge (0, 55) for the root, then (parent, child)): 4 residual levels of
masked Conv1d (kernel 4, stride 2, edge neighbourhood radius 2) + GroupNorm(10) + shortcut Conv1d(kernel 1, stride 2)
+ mean pooling of edge chains + tanh, channels per edge 6,6,6,12,12 (vae_grow [1,1,2,1]), 55->35->20->20 edges.
Output: 240 features per 16 frames. The decoder is VQDecoderV3 (2 ResBlocks, 4 x (nearest upsample, conv, lrelu)).

FGD procedure (EMAGE `test()`): each test clip as ONE sequence (batch 1), cut to a multiple of `vae_test_len` = 32
frames, `map2latent` over the whole cut sequence, latents reshaped to (-1, 240) and pooled over all clips.
"""

from __future__ import annotations

import io
import lzma
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from omniges.data.body import axis_angle_to_rot6d, matrix_to_rot6d, rot6d_to_matrix
from omniges.data.dataset import WindowSource
from omniges.data.kinematics import SMPLX_PARENTS
from omniges.helpers import exists

NUM_JOINTS = 55
MOTION_DIM = NUM_JOINTS * 6
LATENT_DIM = 240
FRAMES_PER_LATENT = 16
FGD_CLIP_MULTIPLE = 32  # EMAGE `vae_test_len`: sequences are cut to a multiple of this before map2latent
CHANNEL_BASE = 6
KERNEL_SIZE = 4
SKELETON_DIST = 2
VAE_GROW = (1, 1, 2, 1)


def load_parents(kintree_path: str | Path | None = None) -> tuple[int, ...]:
    """SMPL-X parents: row 0 of `kintree_table` in an SMPL-X .npz (as EMAGE reads it), else the standard constant."""
    if not exists(kintree_path):
        return SMPLX_PARENTS
    with np.load(kintree_path, encoding="latin1") as data:
        return tuple(int(p) for p in data["kintree_table"][0].astype(np.int32))


# ---------------------------------------------------------------- skeleton topology (EMAGE utils/skeleton.py)


def edge_topology(parents: tuple[int, ...]) -> list[tuple[int, int]]:
    """Edges (parent, child) with EMAGE's virtual root edge (0, num_joints) first, so edge i carries joint i."""
    return [(0, len(parents))] + [(parents[i], i) for i in range(1, len(parents))]


def edge_neighbours(edges: list[tuple[int, int]], dist: int) -> list[list[int]]:
    """Per edge, the edges within `dist` hops (edges sharing a joint are 1 hop apart), by Floyd-Warshall."""
    ends = np.asarray(edges)
    shared = (ends[:, None, :, None] == ends[None, :, None, :]).any(axis=(2, 3))
    hops = np.where(shared, 1.0, np.inf)
    np.fill_diagonal(hops, 0.0)
    for k in range(len(edges)):
        hops = np.minimum(hops, hops[:, k, None] + hops[None, k, :])
    return [np.flatnonzero(row <= dist).tolist() for row in hops]


def pooling_plan(edges: list[tuple[int, int]], last_pool: bool) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """EMAGE SkeletonPool: split the tree into chains between branch joints, then merge chain edges pairwise."""
    degree = Counter(j for edge in edges for j in edge)
    chains: list[list[int]] = []

    def walk(joint: int, chain: list[int]) -> None:
        if degree[joint] > 2 and joint != 0:
            chains.append(chain)
            chain = []
        if degree[joint] == 1:
            chains.append(chain)
            return
        for idx, (parent, child) in enumerate(edges):
            if parent == joint:
                walk(child, chain + [idx])

    walk(0, [])
    if last_pool:
        return chains, []
    groups, new_edges = [], []
    for chain in chains:
        if len(chain) % 2 == 1:
            groups.append([chain[0]])
            new_edges.append(edges[chain[0]])
            chain = chain[1:]
        for a, b in zip(chain[::2], chain[1::2], strict=True):
            groups.append([a, b])
            new_edges.append((edges[a][0], edges[b][1]))
    return groups, new_edges


class SkeletonConv(nn.Module):
    """Conv1d whose output channels of edge i only see input channels of edges in its neighbourhood (fixed mask)."""

    def __init__(self, neighbours: list[list[int]], *, dim_in: int, dim_out: int, kernel_size: int, stride: int,
                 padding: int):
        super().__init__()
        num_edges = len(neighbours)
        assert dim_in % num_edges == 0 and dim_out % num_edges == 0, "channels must split evenly over edges"
        adjacency = torch.zeros(num_edges, num_edges)
        for i, near in enumerate(neighbours):
            adjacency[i, near] = 1.0
        block = torch.ones(dim_out // num_edges, dim_in // num_edges)
        mask = torch.kron(adjacency, block)[..., None].expand(-1, -1, kernel_size).contiguous()
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in, kernel_size))
        self.bias = nn.Parameter(torch.empty(dim_out))
        self.register_buffer("mask", mask)
        self.stride, self.padding = stride, padding
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform on the masked fan-in, as EMAGE initialises each edge block."""
        fan_in = self.mask[0].sum().item()
        bound = 1 / np.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight * self.mask, self.bias, stride=self.stride, padding=self.padding)


class SkeletonPool(nn.Module):
    """Mean-pools the channels of merged edges with a fixed (groups*c, edges*c) matrix stored as `weight`."""

    def __init__(self, groups: list[list[int]], *, num_edges: int, channels_per_edge: int):
        super().__init__()
        weight = torch.zeros(len(groups), num_edges)
        for i, group in enumerate(groups):
            weight[i, group] = 1.0 / len(group)
        self.register_buffer("weight", torch.kron(weight, torch.eye(channels_per_edge)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight @ x


class SkeletonResidual(nn.Module):
    """One encoder level: (masked conv k4 s2 + GroupNorm) + masked conv k1 s2 shortcut, then edge pooling + tanh."""

    def __init__(self, edges: list[tuple[int, int]], *, dim_in: int, dim_out: int, last_pool: bool):
        super().__init__()
        neighbours = edge_neighbours(edges, SKELETON_DIST)
        self.residual = nn.Sequential(
            SkeletonConv(neighbours, dim_in=dim_in, dim_out=dim_out, kernel_size=KERNEL_SIZE, stride=2,
                         padding=(KERNEL_SIZE - 1) // 2),
            nn.GroupNorm(10, dim_out),
        )
        self.shortcut = SkeletonConv(neighbours, dim_in=dim_in, dim_out=dim_out, kernel_size=1, stride=2, padding=0)
        groups, self.new_edges = pooling_plan(edges, last_pool)
        common = []
        if len(groups) != len(edges):
            common.append(SkeletonPool(groups, num_edges=len(edges), channels_per_edge=dim_out // len(edges)))
        self.common = nn.Sequential(*common, nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.common(self.residual(x) + self.shortcut(x))


class LocalEncoder(nn.Module):
    """EMAGE LocalEncoder: 4 SkeletonResidual levels, (b, t, 330) -> (b, t/16, 240)."""

    def __init__(self, parents: tuple[int, ...], *, grow: tuple[int, ...] = VAE_GROW):
        super().__init__()
        edges = edge_topology(parents)
        channels = [CHANNEL_BASE]
        for g in grow:
            channels.append(channels[-1] * g)
        self.layers = nn.ModuleList()
        for i in range(len(grow)):
            level = SkeletonResidual(edges, dim_in=channels[i] * len(edges), dim_out=channels[i + 1] * len(edges),
                                     last_pool=i == len(grow) - 1)
            self.layers.append(nn.Sequential(level))
            edges = level.new_edges

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        x = rearrange(motion, "b t c -> b c t")
        for layer in self.layers:
            x = layer(x)
        return rearrange(x, "b c t -> b t c")


class ResBlock(nn.Module):
    """conv3 - lrelu - conv3 with identity skip."""

    def __init__(self, dim: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv1d(dim, dim, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv1d(dim, dim, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + x


class VQDecoderV3(nn.Module):
    """EMAGE VQDecoderV3: 2 ResBlocks, 4 x (nearest x2 upsample, conv3, lrelu), conv3; (b, t/16, 240) -> (b, t, 330)."""

    def __init__(self, *, dim: int = LATENT_DIM, dim_out: int = MOTION_DIM, num_up: int = 4):
        super().__init__()
        channels = [dim] * num_up + [dim_out]
        layers: list[nn.Module] = [ResBlock(dim), ResBlock(dim)]
        for i in range(num_up):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(channels[i], channels[i + 1], 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv1d(dim_out, dim_out, 3, padding=1))
        self.main = nn.Sequential(*layers)
        for module in self.main.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return rearrange(self.main(rearrange(latent, "b t c -> b c t")), "b c t -> b t c")


class VAESKConv(nn.Module):
    """EMAGE's FGD autoencoder; `fc_mu`/`fc_logvar` exist only so the checkpoint loads (variational=False)."""

    def __init__(self, *, parents: tuple[int, ...] = SMPLX_PARENTS):
        super().__init__()
        assert len(parents) == NUM_JOINTS, f"expected {NUM_JOINTS} SMPL-X parents, got {len(parents)}"
        self.encoder = LocalEncoder(parents)
        self.decoder = VQDecoderV3()
        self.fc_mu = nn.Linear(LATENT_DIM, LATENT_DIM)
        self.fc_logvar = nn.Linear(LATENT_DIM, LATENT_DIM)

    def map2latent(self, motion: torch.Tensor) -> torch.Tensor:
        """(b, t, 330) rot6d, t a multiple of 16 -> (b, t/16, 240)."""
        return self.encoder(motion)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(b, t/16, 240) -> (b, t, 330)."""
        return self.decoder(latent)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return self.decode(self.map2latent(motion))


# ---------------------------------------------------------------- checkpoint IO (EMAGE format)


def _read_checkpoint(path: Path) -> dict:
    """torch.load of a plain or .xz-compressed file."""
    if path.suffix == ".xz":
        return torch.load(io.BytesIO(lzma.decompress(path.read_bytes())), map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_evaluator(path: str | Path, *, kintree_path: str | Path | None = None) -> VAESKConv:
    """Load `{'model_state': ...}` (EMAGE's AESKConv_240_100.bin, optionally .xz) strictly, stripping `module.`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FGD evaluator checkpoint not found: {path}")
    checkpoint = _read_checkpoint(path)
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise ValueError(f"{path}: expected an EMAGE checkpoint dict with key 'model_state'")
    state = {k.removeprefix("module."): v for k, v in checkpoint["model_state"].items()}
    model = VAESKConv(parents=load_parents(kintree_path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        shapes = ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in mismatched)
        details = [
            f"missing keys: {missing}" if missing else "",
            f"unexpected keys: {unexpected}" if unexpected else "",
            f"shape mismatch: {shapes}" if mismatched else "",
        ]
        raise ValueError(f"{path} is not a VAESKConv(240, 330) checkpoint; " + "; ".join(d for d in details if d))
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_evaluator(model: VAESKConv, path: str | Path) -> Path:
    """Save in EMAGE's format `{'model_state': state_dict}` (no `module.` prefix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": model.state_dict()}, path)
    return path


# ---------------------------------------------------------------- training (EMAGE ae_trainer losses)


def _rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3), pytorch3d Gram-Schmidt on rows."""
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-2)


def _geodesic(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean rotation angle between matrices."""
    rel = pred @ target.transpose(-1, -2)
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.acos(cos.clamp(-1 + eps, 1 - eps)).mean()


def reconstruction_losses(model: VAESKConv, motion: torch.Tensor) -> dict[str, torch.Tensor]:
    """EMAGE AE loss: 10 x geodesic + L1 velocity + L1 acceleration, all on rotation matrices."""
    rec = _rot6d_to_matrix(rearrange(model(motion), "b t (j d) -> b t j d", d=6))
    tar = _rot6d_to_matrix(rearrange(motion, "b t (j d) -> b t j d", d=6))
    rot = 10 * _geodesic(rec, tar)
    vel = F.l1_loss(rec[:, 1:] - rec[:, :-1], tar[:, 1:] - tar[:, :-1])
    acc = F.l1_loss(rec[:, 2:] + rec[:, :-2] - 2 * rec[:, 1:-1], tar[:, 2:] + tar[:, :-2] - 2 * tar[:, 1:-1])
    return {"rot": rot, "vel": vel, "acc": acc, "total": rot + vel + acc}


def train_evaluator(model: VAESKConv, windows: np.ndarray | WindowSource, *, steps: int, batch_size: int = 32,
                    lr: float = 1e-4, seed: int = 0, progress: bool = True, device: str | torch.device = "cpu") -> dict:
    """Train the autoencoder on (N, T, 330) rot6d windows (T a multiple of 16; EMAGE uses 64) by reconstruction,
    on `device`; the model is back on the CPU (in eval mode) afterwards. A WindowSource is read on demand."""
    windows_t = windows if isinstance(windows, WindowSource) else torch.as_tensor(np.asarray(windows),
                                                                                   dtype=torch.float32)
    shape = (len(windows_t), *windows_t[[0]].shape[1:])
    assert len(shape) == 3 and shape[-1] == MOTION_DIM, f"windows must be (N, T, 330): {shape}"
    assert shape[1] % FRAMES_PER_LATENT == 0, f"window length must be a multiple of {FRAMES_PER_LATENT}"
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), foreach=True)
    model.train()
    history: list[float] = []
    log_every = max(1, steps // 10)
    for step in range(steps):
        index = torch.randint(len(windows_t), (min(batch_size, len(windows_t)),), generator=generator)
        losses = reconstruction_losses(model, windows_t[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        history.append(losses["total"].item())
        if progress and (step % log_every == 0 or step == steps - 1):
            parts = " ".join(f"{k}={v.item():.4f}" for k, v in losses.items())
            print(f"[fgd-ae] step {step + 1}/{steps} {parts}", file=sys.stderr)
    model.eval().cpu()
    final = {k: v.item() for k, v in losses.items()} if steps else {}
    return {"steps": steps, "loss_history": history, "final": final}


# ---------------------------------------------------------------- FGD features


def poses_to_rot6d(poses: np.ndarray) -> np.ndarray:
    """(T, 165) SMPL-X axis-angle -> (T, 330) rot6d, the evaluator's input (EMAGE feeds unnormalised rot6d)."""
    poses = np.asarray(poses)
    return rearrange(axis_angle_to_rot6d(rearrange(poses, "t (j c) -> t j c", c=3)), "t j d -> t (j d)")


@torch.no_grad()
def latents(model: VAESKConv, motion: np.ndarray | torch.Tensor, *, orthonormalize: bool = True) -> np.ndarray:
    """(T, 330) rot6d -> (2 * (T // 32), 240) FGD features: EMAGE cuts T to a multiple of 32 and encodes the clip
    whole; GroupNorm normalises over time, so features of windows differ from those of the whole clip."""
    motion = np.asarray(motion, dtype=np.float64)
    assert motion.ndim == 2 and motion.shape[1] == MOTION_DIM, f"motion must be (T, 330), got {motion.shape}"
    usable = motion.shape[0] - motion.shape[0] % FGD_CLIP_MULTIPLE
    if usable == 0:
        return np.zeros((0, LATENT_DIM), dtype=np.float32)
    motion = motion[:usable]
    if orthonormalize:  # EMAGE passes generated rot6d through rotation_6d_to_matrix -> matrix_to_rotation_6d
        shaped = rearrange(motion, "t (j d) -> t j d", d=6)
        motion = rearrange(matrix_to_rot6d(rot6d_to_matrix(shaped)), "t j d -> t (j d)")
    model.eval()
    x = torch.as_tensor(motion, dtype=torch.float32)[None]
    return model.map2latent(x)[0].numpy()
