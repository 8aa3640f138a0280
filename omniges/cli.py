"""The `omniges` command: run the demo pipeline, switch data sources, generate, transcribe, voice, render."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import click

from omniges.config import ParamsError, update_params_file


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Omniges: speech <-> full-body 3D gesture with one multi-modal diffusion transformer."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@main.group()
def params() -> None:
    """Read or change params.yaml (the single source of parameters for Snakemake and DVC)."""


@params.command("set")
@click.argument("assignments", nargs=-1, required=True)
@click.option("--file", "path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Parameter file to edit.")
def params_set(assignments: tuple[str, ...], path: str) -> None:
    """Set dotted keys, e.g. `omniges params set data.source=beat2 data.beat2_root=/data/beat_english_v2.0.0`.

    The new file is validated before it is written: a bad key or value leaves it unchanged.
    """
    pairs = {}
    for item in assignments:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="ASSIGNMENTS")
        key, value = item.split("=", 1)
        pairs[key] = value
    try:
        update_params_file(path, pairs)
    except ParamsError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"updated {path}: " + ", ".join(f"{k}={v}" for k, v in pairs.items()))


@main.command()
@click.option("--jobs", "-j", default=2, show_default=True, help="Parallel Snakemake jobs (cores).")
@click.option("--target", default="all", show_default=True, help="Snakemake target (all, train_a2g, ...).")
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would run.")
def demo(jobs: int, target: str, dry_run: bool) -> None:
    """Run the whole pipeline (Snakemake) on the data params.yaml names; the embedded corpus by default."""
    if not Path("Snakefile").is_file():
        raise click.ClickException("run `omniges demo` from the repository root (no Snakefile here)")
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    command = [exe, "--profile", "workflow/profiles/local", "--cores", str(jobs), target]
    if dry_run:
        command.append("-n")
    click.echo("$ " + " ".join(command))
    result = subprocess.run(command)
    if result.returncode:
        raise click.ClickException(f"pipeline failed (exit {result.returncode}); see logs/ for the stage logs")
    if not dry_run:
        _print_outputs()


def _print_outputs() -> None:
    for label, folder in (("metrics", "results/metrics"), ("videos", "results/videos"), ("models", "results/models")):
        if Path(folder).exists():
            click.echo(f"{label:8s} {Path(folder).resolve()}")
    click.echo("tracking mlflow ui --backend-store-uri sqlite:///mlflow.db")


CHECKPOINT_HELP = "Trained model (default: results/models/multitask/model.pt; train it with `make demo`)."
DEFAULT_CHECKPOINT = "results/models/multitask/model.pt"


def _device(device: str | None) -> str:
    """--device, else compute.device of params.yaml (auto without one)."""
    from omniges.config import load_params

    if device:
        return device
    return load_params().compute.device if Path("params.yaml").is_file() else "auto"


def _model(checkpoint: str, steps: int | None, guidance: float | None, seed: int, device: str | None = None):
    from omniges.device import DeviceError, resolve_device
    from omniges.inference import GenerationSettings, ModelNotTrainedError, Omniges

    settings = GenerationSettings.from_params()
    settings.seed = seed
    if steps:
        settings.steps = steps
    if guidance is not None:
        settings.guidance, settings.task_guidance = guidance, {}
    try:
        target = str(resolve_device(_device(device)))
        return Omniges.load(checkpoint, settings=settings, device=target)
    except (ModelNotTrainedError, DeviceError) as error:
        raise click.ClickException(str(error)) from None
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(f"cannot load {checkpoint}: {error}") from None


def _check_out(path: str) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise click.BadParameter(f"directory {out.parent} does not exist", param_hint="--out")
    return out


def _read_motion(path: str) -> dict:
    from omniges.data.beat2 import Beat2Error, read_motion

    try:
        return read_motion(path)
    except Beat2Error as error:
        raise click.ClickException(str(error)) from None


def _words(transcript: str | None, textgrid: str | None, seconds: float) -> list[tuple[str, float, float]] | None:
    """Timed words from a TextGrid, or a plain transcript spread evenly over the audio."""
    if textgrid:
        from omniges.features.text import read_textgrid

        try:
            return [(w, s, e) for w, s, e in read_textgrid(textgrid)]
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    if transcript:
        from omniges.render.compare import spread_words

        return spread_words(transcript.split(), seconds)
    return None


def _save_npz(path: Path, motion: dict) -> None:
    """BEAT2 / SMPL-X npz (poses 165, trans, expressions, betas, model, gender, mocap_frame_rate), atomically."""
    import numpy as np

    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, poses=motion["poses"].astype(np.float32), trans=motion["trans"].astype(np.float64),
             expressions=motion["expressions"].astype(np.float64), betas=motion["betas"].astype(np.float32),
             model="smplx2020", gender="neutral", mocap_frame_rate=np.array(30))
    tmp.replace(path)


generation_options = [
    click.option("--checkpoint", default=DEFAULT_CHECKPOINT, show_default=True, help=CHECKPOINT_HELP),
    click.option("--steps", type=click.IntRange(1, 64), default=None, help="Sampler steps (default: params)."),
    click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (default: params)."),
    click.option("--seed", type=int, default=0, show_default=True, help="Noise seed (same seed, same motion)."),
    click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: compute.device in params)."),
]


def with_generation_options(func):
    for option in reversed(generation_options):
        func = option(func)
    return func


@main.command()
@click.option("--audio", required=True, type=click.Path(dir_okay=False),
              help="Speech to gesture for: wav/flac/ogg/mp3, any sample rate, mono or stereo, any length.")
@click.option("--transcript", default=None, help="Optional transcript text (spread evenly over the audio).")
@click.option("--textgrid", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Optional Praat TextGrid with word timings (better than --transcript).")
@click.option("--out", required=True, help="Output video (.mp4) with the speech as its sound track.")
@click.option("--npz", default=None, help="Also export the motion as a BEAT2 / SMPL-X .npz.")
@with_generation_options
def generate(audio: str, transcript: str | None, textgrid: str | None, out: str, npz: str | None, checkpoint: str,
             steps: int | None, guidance: float | None, seed: int, device: str | None) -> None:
    """A2G: speech -> full-body SMPL-X gesture, rendered to a video with sound (and optionally an npz)."""
    from omniges.features.audio import SAMPLE_RATE, AudioError, load_audio
    from omniges.render.video import render_comparison

    out_path = _check_out(out)
    npz_path = _check_out(npz) if npz else None
    try:
        wave = load_audio(audio, SAMPLE_RATE)
    except AudioError as error:
        raise click.ClickException(str(error)) from None
    model = _model(checkpoint, steps, guidance, seed, device)
    words = _words(transcript, textgrid, len(wave) / SAMPLE_RATE)
    motion = model.a2g(wave, words)
    if npz_path:
        _save_npz(npz_path, motion)
        click.echo(f"motion   {npz_path}")
    render_comparison(out_path, {"Omniges A2G": motion}, audio=wave, sr=SAMPLE_RATE, words=words, fps=30)
    click.echo(f"video    {out_path} ({len(motion['poses']) / 30:.1f} s)")


@main.command()
@click.option("--motion", required=True, type=click.Path(dir_okay=False), help="BEAT2 / SMPL-X motion .npz.")
@with_generation_options
def transcribe(motion: str, checkpoint: str, steps: int | None, guidance: float | None, seed: int,
               device: str | None) -> None:
    """G2T: the words a gesture sequence most likely accompanied."""
    model = _model(checkpoint, steps, guidance, seed, device)
    click.echo(" ".join(model.g2t(_read_motion(motion))))


@main.command()
@click.option("--motion", required=True, type=click.Path(dir_okay=False), help="BEAT2 / SMPL-X motion .npz.")
@click.option("--out", required=True, help="Output .wav (16 kHz mono).")
@with_generation_options
def voice(motion: str, out: str, checkpoint: str, steps: int | None, guidance: float | None, seed: int,
          device: str | None) -> None:
    """G2A: speech-like audio for a gesture sequence (Griffin-Lim from the generated MFCC)."""
    import soundfile as sf

    out_path = _check_out(out)
    model = _model(checkpoint, steps, guidance, seed, device)
    wave = model.g2a(_read_motion(motion))
    tmp = out_path.with_name(out_path.name + ".tmp.wav")
    sf.write(tmp, wave, 16000)
    tmp.replace(out_path)
    click.echo(f"audio    {out_path} ({len(wave) / 16000:.1f} s)")


@main.command("render")
@click.argument("motion", type=click.Path(dir_okay=False))
@click.option("--audio", default=None, type=click.Path(dir_okay=False), help="Sound track (any rate/channels).")
@click.option("--out", required=True, help="Output video (.mp4).")
@click.option("--smplx-model", default=None, type=click.Path(exists=True),
              help="SMPL-X model .npz for a mesh instead of the built-in skeleton.")
def render_cmd(motion: str, audio: str | None, out: str, smplx_model: str | None) -> None:
    """Render a BEAT2 / SMPL-X motion .npz to a video (with sound when --audio is given)."""
    from omniges.features.audio import AudioError, load_audio
    from omniges.render.video import render_comparison

    out_path = _check_out(out)
    data = _read_motion(motion)
    wave = None
    if audio:
        try:
            wave = load_audio(audio, 16000, require_nonsilent=False)
        except AudioError as error:
            raise click.ClickException(str(error)) from None
    render_comparison(out_path, {Path(motion).stem: data}, audio=wave, sr=16000, fps=30, model_path=smplx_model)
    click.echo(f"video    {out_path}")
