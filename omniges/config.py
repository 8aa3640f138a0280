"""params.yaml loading and validation: one typed object, errors that name the bad key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PARAMS = Path("params.yaml")
DEVICE_PATTERN = r"auto|cpu|cuda|cuda:\d+"  # compute.device (omniges/device.py resolves it)
_UNION_MEMBER = re.compile(r"^(bool|int|float|str|none|\[key\]|literal\[.*\]|function-\w+\[.*\])$")


class ParamsError(ValueError):
    """A params.yaml that cannot be used; the message names the key and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(Strict):
    speakers: int = Field(4, ge=1, le=30)
    clips_per_speaker: int = Field(30, ge=4)
    val_per_speaker: int = Field(6, ge=1)  # the last clips of each speaker: val, then test, then one additional
    test_per_speaker: int = Field(6, ge=1)
    clip_seconds: float = Field(20.0, ge=4.0, le=600.0)
    seed: int = 0
    speech: Literal["formant", "espeak"] = "formant"


class DataParams(Strict):
    source: Literal["synthetic", "beat2"] = "synthetic"
    beat2_root: str = ""
    synthetic_root: str = "data/synthetic"
    synthetic: SyntheticParams = SyntheticParams()
    speakers: list[int] = []
    splits: list[Literal["train", "val", "test", "additional"]] = ["train", "val", "test", "additional"]
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
    config: Literal["base", "tiny"] = "tiny"
    layer: int | Literal["mean", "auto"] = "auto"
    seed: int = 0


class TextParams(Strict):
    path: str = ""


class FeaturesParams(Strict):
    wavlm: WavLMParams = WavLMParams()
    text: TextParams = TextParams()
    n_mfcc: int = Field(128, ge=13, le=256)
    vocab_min_count: int = Field(1, ge=1)


class RvqvaeModelParams(Strict):
    width: int = Field(128, ge=8)
    code_dim: int = Field(128, ge=4)
    depth: int = Field(3, ge=1)
    dilation_growth_rate: int = Field(3, ge=1)
    down_t: Literal[2] = 2
    num_quantizers: int = Field(6, ge=1)
    nb_code: int = Field(256, ge=2)


class RvqvaeTrainParams(Strict):
    steps: int = Field(600, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_accumulation_steps: int = Field(1, ge=1)
    commit_weight: float = Field(0.02, ge=0)
    velocity_weight: float = Field(0.1, ge=0)
    jaw_weight: float = Field(3.0, ge=0)
    mouth_weight: float = Field(3.0, ge=0)
    mouth_expressions: int = Field(10, ge=0, le=100)
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
    stride: int = Field(4, ge=1)
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


TASKS = ("a2g", "t2g", "g2t", "g2a")
Task = Literal["a2g", "t2g", "g2t", "g2a"]
GuidedTask = Literal["a2g", "t2g", "g2a"]  # tasks whose sampler takes a guidance scale (G2T decodes text)


class ModelParams(Strict):
    """The generator: a named OmnigesConfig preset plus field overrides (text width and vocabulary come from
    the features stage)."""

    size: Literal["demo", "full"] = "demo"
    overrides: dict[str, Any] = {"num_speakers": 0}

    @field_validator("overrides")
    @classmethod
    def _known_fields(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import fields

        from omniges.models.omniges_transformer import OmnigesConfig

        unknown = sorted(set(overrides) - {f.name for f in fields(OmnigesConfig)})
        if unknown:
            raise ValueError(f"{unknown} are not OmnigesConfig fields")
        return overrides


class FlowParams(Strict):
    """Rectified-flow training: timestep draw, condition drops, shortcut and prefix shares, parameterisation."""

    logit_normal_mean: float = -0.4
    logit_normal_std: float = Field(1.0, gt=0)
    cfg_dropout: float = Field(0.1, ge=0, le=1)
    a2g_text_dropout: float = Field(0.5, ge=0, le=1)
    speaker_dropout: float = Field(0.1, ge=0, le=1)
    shortcut_fraction: float = Field(0.25, ge=0, le=1)
    max_shortcut_steps: int = Field(128, ge=2)
    prefix_prob: float = Field(0.25, ge=0, le=1)
    max_prefix_tokens: int = Field(8, ge=1)
    stream_prefix_prob: float = Field(0.0, ge=0, le=1)
    prediction: Literal["x", "velocity"] = "x"
    t_eps: float = Field(0.05, gt=0, lt=1)
    g2t_condition_noise: float = Field(0.5, ge=0, le=1)
    model_guidance: dict[GuidedTask, float] = {"a2g": 1.5}


class LossParams(Strict):
    """Weights of the generator's loss terms (the flow MSE itself weighs 1)."""

    code: float = Field(0.1, ge=0)
    text: float = Field(1.0, ge=0)
    shortcut: float = Field(1.0, ge=0)
    reconstruction: float = Field(0.5, ge=0)
    velocity: float = Field(0.5, ge=0)
    acceleration: float = Field(0.25, ge=0)
    latent_velocity: float = Field(0.3, ge=0)


class TrainingCommonParams(Strict):
    """Optimiser, schedule, logging and data loading shared by every experiment."""

    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(50, ge=0)
    grad_clip: float = Field(1.0, ge=0)  # 0 = no clipping
    ema_decay: float = Field(0.995, ge=0, lt=1)
    checkpoint_every: int = Field(200, ge=1)
    val_every: int = Field(100, ge=1)
    log_every: int = Field(20, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_workers: int = Field(0, ge=0)
    prefetch_factor: int = Field(2, ge=1)
    data_on_device: bool | Literal["auto"] = "auto"
    resident_max_fraction: float = Field(0.25, gt=0, le=1)
    seed: int = 0
    task_mode: Literal["probability", "round_robin"] = "probability"


class ExperimentParams(Strict):
    """One generator: its training steps and the tasks it trains on, with their sampling weights."""

    steps: int = Field(ge=1)
    tasks: dict[Task, float] = Field(min_length=1)


class TrainingParams(Strict):
    window: int = Field(128, ge=4, multiple_of=4)
    stride: int = Field(32, ge=1)
    min_window: int = Field(128, ge=4, multiple_of=4)
    batch_tokens: int = Field(0, ge=0)
    loss: LossParams = LossParams()
    common: TrainingCommonParams = TrainingCommonParams()
    experiments: dict[str, ExperimentParams] = {
        "a2g": ExperimentParams(steps=1000, tasks={"a2g": 1.0}),
        "t2g": ExperimentParams(steps=1200, tasks={"t2g": 1.0}),
        "g2t": ExperimentParams(steps=300, tasks={"g2t": 1.0}),
        "g2a": ExperimentParams(steps=600, tasks={"g2a": 1.0}),
        "multitask": ExperimentParams(steps=1200, tasks={"t2g": 0.3, "a2g": 0.3, "g2t": 0.2, "g2a": 0.2}),
    }
    # the experiments the pipeline builds (Snakemake `all`, `dvc repro`, `make demo`); every defined experiment
    # still has its targets (`snakemake train_t2g`), and Snakemake's `compare` builds them all
    run: list[str] = Field(["multitask"], min_length=1)

    @model_validator(mode="after")
    def _min_window_fits(self) -> TrainingParams:
        if self.min_window > self.window:
            raise ValueError(f"min_window ({self.min_window}) must be <= window ({self.window})")
        unknown = [name for name in self.run if name not in self.experiments]
        if unknown:
            raise ValueError(f"run names {unknown}, not experiments; training.experiments defines "
                             f"{sorted(self.experiments)}")
        if len(set(self.run)) != len(self.run):
            raise ValueError(f"run lists an experiment twice: {self.run}")
        return self

    def experiment(self, name: str) -> dict[str, Any]:
        """The Trainer settings of one experiment: the common ones plus its steps and tasks."""
        if name not in self.experiments:
            raise ValueError(f"unknown experiment {name!r}; params.yaml defines {sorted(self.experiments)}")
        return {**self.common.model_dump(), **self.experiments[name].model_dump()}


class GenerationParams(Strict):
    """Sampling defaults of `omniges generate`, evaluate and render (omniges.inference.GenerationSettings)."""

    steps: int = Field(2, ge=1)
    guidance: float = Field(1.5, ge=0)
    task_guidance: dict[GuidedTask, float] = {"t2g": 6.0}
    solver: Literal["euler", "heun"] = "euler"
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    cfg_batch: bool | Literal["auto"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    quantize: Literal["auto", "int8", "none"] = "auto"
    window_tokens: int = Field(0, ge=0)
    overlap_tokens: int = Field(4, ge=0)
    root_horizon_s: float = Field(10.0, ge=0)
    seed: int = 0
    speaker: int | None = None
    g2t_word_bonus: float = 0.0

    @field_validator("guidance_interval")
    @classmethod
    def _ordered(cls, interval: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= interval[0] < interval[1]:
            raise ValueError("must be [lo, hi] with 0 <= lo < hi")
        return interval


class Params(BaseModel):
    """Every parameter of the project, each section a strict model: an unknown key or bad value is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0
    data: DataParams = DataParams()
    features: FeaturesParams = FeaturesParams()
    rvqvae: RvqvaeParams = RvqvaeParams()
    render: RenderParams = RenderParams()
    tracking: TrackingParams = TrackingParams()
    compute: ComputeParams = ComputeParams()
    evaluation: EvaluationParams = EvaluationParams()
    model: ModelParams = ModelParams()
    flow: FlowParams = FlowParams()
    training: TrainingParams = TrainingParams()
    generation: GenerationParams = GenerationParams()

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
        """A section as a plain dict, with the YAML's key names (for logging)."""
        return getattr(self, name).model_dump()


def _format_error(error: ValidationError, path: Path) -> str:
    """One line: the file, then each bad key with its problem and the value given."""
    problems: dict[str, list[str]] = {}
    given: dict[str, Any] = {}
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        # a union's members ('bool', "literal['auto']") are not keys: their messages join under the key
        key = ".".join(str(part) for part in item["loc"] if not _UNION_MEMBER.match(str(part)))
        problems.setdefault(key, []).append(message)
        given[key] = item.get("input")
    shown = {key: "" if isinstance(value, dict) else f" (got {value!r})" for key, value in given.items()}
    return f"{path}: " + "; ".join(
        f"{key}: {' or '.join(messages)}{shown[key]}" if key else " ".join(messages)  # a cross-section check
        for key, messages in problems.items())


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
    """Set dotted keys in params.yaml (values parsed as YAML), validate, then write; comments and layout are kept.

    Keys inside inline mappings and lists work too (`training.experiments.a2g.steps`, `generation.guidance_interval.1`).
    """
    from omniges.params_file import KeyNotFound, set_keys

    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file not found")
    try:
        text = set_keys(path.read_text(), assignments)
    except (KeyNotFound, ValueError) as error:
        raise ParamsError(f"{path}: {error}") from None
    try:
        params = Params.model_validate(yaml.safe_load(text))
    except ValidationError as error:
        raise ParamsError(_format_error(error, path)) from None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return params
