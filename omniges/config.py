"""params.yaml loading and validation: one typed object, errors that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PARAMS = Path("params.yaml")
DEVICE_PATTERN = r"auto|cpu|cuda|cuda:\d+"  # compute.device (omniges/device.py resolves it)


class ParamsError(ValueError):
    """A params.yaml that cannot be used; the message names the key and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(Strict):
    speakers: int = Field(4, ge=1, le=30)
    clips_per_speaker: int = Field(6, ge=4)
    val_per_speaker: int = Field(1, ge=1)   # the last clips of each speaker: val, then test, then one additional
    test_per_speaker: int = Field(1, ge=1)
    clip_seconds: float = Field(20.0, ge=4.0, le=600.0)
    seed: int = 0
    speech: Literal["formant", "espeak"] = "formant"


class DataParams(Strict):
    source: Literal["synthetic", "beat2"] = "synthetic"
    beat2_root: str = ""
    synthetic_root: str = "data/synthetic"
    synthetic: SyntheticParams = SyntheticParams()
    speakers: list[int] = []
    splits: list[Literal["train", "val", "test", "additional"]] = ["train", "val", "test"]
    fps: Literal[30] = 30
    audio_sr: Literal[16000] = 16000
    length_tolerance_s: float = Field(1.0, ge=0.0)
    workers: int = Field(2, ge=1)
    face_jaw: bool = True

    @field_validator("splits")
    @classmethod
    def _needs_train(cls, splits: list[str]) -> list[str]:
        if "train" not in splits:
            raise ValueError("must include 'train'")
        return splits

    @property
    def root(self) -> Path:
        """The BEAT2-layout corpus that `preprocess` reads."""
        if self.source == "beat2":
            if not self.beat2_root:
                raise ParamsError("data.beat2_root: must name the beat_english_v2.0.0 directory when source=beat2")
            return Path(self.beat2_root)
        return Path(self.synthetic_root)


class WavLMParams(Strict):
    path: str = ""
    config: Literal["base", "tiny"] = "base"
    layer: int | Literal["mean"] = "mean"
    seed: int = 0


class TextParams(Strict):
    path: str = ""


class FeaturesParams(Strict):
    wavlm: WavLMParams = WavLMParams()
    text: TextParams = TextParams()
    n_mfcc: int = Field(128, ge=13, le=256)
    vocab_min_count: int = Field(1, ge=1)


class RvqvaeModelParams(Strict):
    width: int = Field(512, ge=8)
    code_dim: int = Field(128, ge=4)
    depth: int = Field(3, ge=1)
    dilation_growth_rate: int = Field(3, ge=1)
    down_t: Literal[2] = 2
    num_quantizers: int = Field(6, ge=1)
    nb_code: int = Field(1024, ge=2)


class RvqvaeTrainParams(Strict):
    steps: int = Field(1200, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(5e-4, gt=0)
    warmup_steps: int = Field(100, ge=0)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_accumulation_steps: int = Field(1, ge=1)
    commit_weight: float = Field(0.02, ge=0)
    velocity_weight: float = Field(0.5, ge=0)
    jaw_weight: float = Field(3.0, ge=0)
    seed: int = 0


class ImportNormalization(Strict):
    """How imported tokenizers' inputs are normalised: GestureLSM's statistics files, or this corpus's."""

    source: Literal["gesturelsm", "corpus"] = "gesturelsm"
    pose_mean: str = ""
    pose_std: str = ""
    trans_mean: str = ""
    trans_std: str = ""


class RvqvaeImport(Strict):
    upper: str = ""
    hands: str = ""
    lower_trans: str = ""
    face: str = ""
    normalization: ImportNormalization = ImportNormalization()


class RvqvaeParams(Strict):
    window: int = Field(64, ge=8, multiple_of=4)
    stride: int = Field(8, ge=1)
    model: RvqvaeModelParams = RvqvaeModelParams()
    train: RvqvaeTrainParams = RvqvaeTrainParams()
    import_: RvqvaeImport = Field(RvqvaeImport(), alias="import")

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return super().model_dump(by_alias=True, **kwargs)


class SlurmParams(Strict):
    """Resources the SLURM profile asks for per training job (workflow/rules/common.smk reads them)."""

    partition: str = "gpu"
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(1, ge=1)
    cpus_per_task: int = Field(8, ge=1)
    mem_mb: int = Field(64000, ge=1000)
    runtime: int = Field(720, ge=1)  # minutes


class ComputeParams(Strict):
    device: str = Field("auto", pattern=rf"^({DEVICE_PATTERN})$")
    slurm: SlurmParams = SlurmParams()


class EvaluatorParams(Strict):
    """The FGD motion autoencoder: EMAGE's checkpoint to import, or how to train one on this corpus."""

    import_: str = Field("", alias="import")
    kintree: str = ""
    window: int = Field(64, ge=8)
    stride: int = Field(16, ge=1)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0)
    seed: int = 0


class EvaluationParams(Strict):
    evaluator: EvaluatorParams = EvaluatorParams()
    mean_vel: str = ""
    max_clips: int = Field(0, ge=0)
    split: Literal["val", "test"] = "test"  # tune (sweeps) on val, report on test
    seed_frames: int = Field(16, ge=0, multiple_of=4)  # GestureLSM: 4 latent tokens of the real motion; 0 = no row
    bootstrap: int = Field(1000, ge=0)  # resamples of the clips for 95% CIs on generated rows; 0 = none
    bootstrap_seed: int = 0

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return super().model_dump(by_alias=True, **kwargs)


class TrackingParams(Strict):
    experiment: str = "omniges"
    uri: str = ""


class RenderParams(Strict):
    clips: int = Field(2, ge=1)
    seconds: float = Field(12.0, gt=0)
    size: int = Field(320, ge=32)
    smplx_model: str = ""
    style: Literal["mannequin", "skeleton"] = "mannequin"


class Params(BaseModel):
    """Every parameter of the project. Sections not modelled yet stay as plain dicts (`extra`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    seed: int = 0
    data: DataParams = DataParams()
    features: FeaturesParams = FeaturesParams()
    rvqvae: RvqvaeParams = RvqvaeParams()
    render: RenderParams = RenderParams()
    tracking: TrackingParams = TrackingParams()
    compute: ComputeParams = ComputeParams()
    evaluation: EvaluationParams = EvaluationParams()

    @model_validator(mode="after")
    def _imports_are_usable(self) -> Params:
        """GestureLSM checkpoints need GestureLSM's statistics and (for the face) its 100-d layout."""
        imported = self.rvqvae.import_
        norm = imported.normalization
        if norm.source != "gesturelsm":
            return self
        if imported.face and self.data.face_jaw:
            raise ValueError("rvqvae.import.face is a GestureLSM face model (100 expressions, no jaw): "
                             "set data.face_jaw=false")
        needed = {"pose_mean", "pose_std"} if imported.upper or imported.hands or imported.lower_trans else set()
        needed |= {"trans_mean", "trans_std"} if imported.lower_trans else set()
        unset = sorted(name for name in needed if not getattr(norm, name))
        if unset:
            raise ValueError(f"rvqvae.import names GestureLSM checkpoints: set rvqvae.import.normalization."
                             f"{{{','.join(unset)}}} to its mean_std/beatx_2_*.npy files (or normalization.source="
                             "corpus for tokenizers trained on this corpus's statistics)")
        return self

    def section(self, name: str) -> dict[str, Any]:
        """A section as a plain dict (for logging and for sections without a model)."""
        value = getattr(self, name)
        return value.model_dump() if isinstance(value, BaseModel) else dict(value)


def _format_error(error: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid parameters"]
    for item in error.errors():
        if not item["loc"]:  # a check across sections: its message names the keys
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
            continue
        key = ".".join(str(part) for part in item["loc"])
        lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate params.yaml (plus dotted-key overrides)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping")
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_format_error(error, path)) from None


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """tree['a']['b'] = value for key 'a.b'; intermediate mappings must exist."""
    *parents, leaf = key.split(".")
    node = tree
    for i, part in enumerate(parents):
        if not isinstance(node.get(part), dict):
            raise ParamsError(f"{'.'.join(parents[: i + 1])}: no such section")
        node = node[part]
    node[leaf] = value


def update_params_file(path: str | Path, assignments: dict[str, str]) -> Params:
    """Set dotted keys in params.yaml (values parsed as YAML), validate, then write; comments are kept."""
    path = Path(path)
    params = load_params(path, {k: yaml.safe_load(v) if v != "" else "" for k, v in assignments.items()})
    text = path.read_text().splitlines()
    for key, value in assignments.items():
        text = _replace_line(text, key, value)
    path.write_text("\n".join(text) + "\n")
    return params


def _replace_line(lines: list[str], key: str, value: str) -> list[str]:
    """Rewrite the line of a dotted key in a block-style YAML file, keeping its trailing comment."""
    parts = key.split(".")
    depth, start = 0, 0
    for i in range(start, len(lines)):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if line.lstrip().startswith(f"{parts[depth]}:") and indent == 2 * depth:
            if depth == len(parts) - 1:
                head, _, rest = line.partition(":")
                comment = rest[rest.index("#") :] if "#" in rest else ""
                shown = value if value != "" else '""'
                lines[i] = f"{head}: {shown}" + (f"  {comment}" if comment else "")
                return lines
            depth += 1
    raise ParamsError(f"{key}: not found in params file")
