"""The `omniges` command: run the demo pipeline, switch data sources, generate, serve, transcribe, voice, render."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import click

from omniges.config import ParamsError, update_params_file


class _Main(click.Group):
    """The command group: a bad params.yaml is one line (the file, the key, the problem) in every command."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ParamsError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--metrics", default="results/metrics", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo wrote the metrics JSON to publish.")
@click.option("--no-publish", is_flag=True, help="Only regenerate the pages from the published JSON.")
def report(metrics: str, no_publish: bool) -> None:
    """Publish the metrics JSON to docs/results/metrics/ and regenerate docs/results.md and the README's tables."""
    from omniges.results_tables import write_report

    for path in write_report(metrics_dir=None if no_publish else Path(metrics)):
        click.echo(f"wrote {path}")


@main.command()
@click.option("--jobs", "-j", default=2, show_default=True, help="Parallel Snakemake jobs (cores).")
@click.option("--target", default="all", show_default=True, help="Snakemake target (all, compare, train_a2g, ...).")
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would run.")
def demo(jobs: int, target: str, dry_run: bool) -> None:
    """Run the whole pipeline (Snakemake) on the data params.yaml names; the embedded corpus by default.

    What Snakemake built is then recorded in dvc.lock (`dvc commit`), so `dvc status` agrees that it is up to date.
    """
    if not Path("Snakefile").is_file():
        raise click.ClickException("run `omniges demo` from the repository root (no Snakefile here)")
    command = [_venv_tool("snakemake"), "--profile", "workflow/profiles/local", "--cores", str(jobs), target]
    if dry_run:
        command.append("-n")
    click.echo("$ " + " ".join(command))
    result = subprocess.run(command)
    if result.returncode:
        raise click.ClickException(f"pipeline failed (exit {result.returncode}); see logs/ for the stage logs")
    if not dry_run:
        _record_in_dvc(target)
        _print_outputs()


@main.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Parameter file of the run to check.")
@click.option("--all", "read_all", is_flag=True, help="Read every clip of the corpus (default: a sample).")
@click.option("--sample", default=6, show_default=True, type=click.IntRange(3, 100), help="Clips in the sample.")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1), help="Cores the run will use.")
@click.option("--experiments", default=None, help="Comma-separated experiments to predict (default: all).")
@click.option("--steps", default="2,10", show_default=True, help="The two step counts each training is timed at.")
@click.option("--checks-only", is_flag=True, help="Only the checks; no timed run of the stages.")
def preflight(params_path: str, read_all: bool, sample: int, jobs: int, experiments: str | None, steps: str,
              checks_only: bool) -> None:
    """Before a long run: check data, params, device, paths, disk, SLURM resources; time each stage, predict the run."""
    try:
        k1, k2 = (int(s) for s in steps.split(","))
    except ValueError:
        raise click.ClickException(f"--steps {steps}: give two step counts, e.g. 2,10") from None
    if not 1 <= k1 < k2:
        raise click.ClickException(f"--steps {steps}: need 1 <= first < second")
    if not Path(params_path).is_file():
        raise click.ClickException(f"--params {params_path}: parameter file not found")
    from omniges.preflight import run_preflight

    names = [e for e in experiments.split(",") if e] if experiments else None
    code = run_preflight(params_path, read_all=read_all, sample=sample, jobs=jobs, steps=(k1, k2), experiments=names,
                         measure_stages=not checks_only, echo=click.echo)
    sys.exit(code)


def _venv_tool(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def dvc_stage(target: str) -> str | None:
    """The dvc.yaml stage of a Snakemake target (`train_multitask` -> `train@multitask`); None for `all` (every
    stage); "" for `compare` and an experiment's target that dvc.yaml does not list (its `foreach` is params'
    training.run)."""
    if target == "all":
        return None
    if target == "compare":  # every defined experiment, and dvc.yaml lists those of training.run only
        return ""
    import yaml

    stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    params = yaml.safe_load(Path("params.yaml").read_text()) if Path("params.yaml").is_file() else {}
    aliases, experiments = {}, set(params.get("training", {}).get("experiments", {}))
    for name, stage in stages.items():
        items = stage.get("foreach", [])
        if isinstance(items, str):  # ${section.key}: DVC reads it from params.yaml; other experiments have no stage
            aliases.update({f"{name}_{e}": "" for e in experiments})
            items = params
            for key in stage["foreach"].strip("${}").split("."):
                items = items.get(key, []) if isinstance(items, dict) else []
        aliases.update({f"{name}_{item}": f"{name}@{item}" for item in items})
    return aliases.get(target, target)  # a plain stage name or an output path: dvc resolves it


def _record_in_dvc(target: str) -> None:
    """`dvc commit` the stages the Snakemake target built (and their upstream), so the two runners agree."""
    if not Path("dvc.yaml").is_file() or not Path(".dvc").is_dir():
        return
    stage = dvc_stage(target)
    if stage == "":
        click.echo(f"not recorded in dvc.lock: {target} builds experiments dvc.yaml does not list (training.run)")
        return
    command = [_venv_tool("dvc"), "commit", "--force", "--quiet", *(["--with-deps", stage] if stage else [])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        reason = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise click.ClickException(f"the pipeline ran, but `{' '.join(command[1:])}` failed: {reason[0]}")
    click.echo(f"recorded in dvc.lock ({stage or 'every stage'}): `dvc status` is clean, `dvc metrics show` works")


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
    from omniges.inference import CheckpointError, GenerationSettings, ModelNotTrainedError, Omniges

    settings = GenerationSettings.from_params()
    settings.seed = seed
    if steps:
        settings.steps = steps
    if guidance is not None:
        settings.guidance, settings.task_guidance = guidance, {}
    try:
        target = str(resolve_device(_device(device)))
        return Omniges.load(checkpoint, settings=settings, device=target)
    except (ModelNotTrainedError, CheckpointError, DeviceError) as error:
        raise click.ClickException(str(error)) from None
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(f"cannot load {checkpoint}: {error}") from None


def _check_out(path: str, suffix: str, option: str = "--out") -> Path:
    """An output path whose folder exists and whose extension is the format written (one-line error if not)."""
    out = Path(path)
    if out.suffix.lower() != suffix:
        raise click.ClickException(f"{option} {path}: writes {suffix} files; give a name ending in {suffix}")
    if not out.parent.is_dir():
        raise click.ClickException(f"{option} {path}: directory {out.parent} does not exist")
    return out


def _check_blender(fbx: str | None) -> None:
    """--fbx needs Blender: a one-line error naming it before anything runs."""
    from omniges.export import blender_path

    if fbx and blender_path() is None:
        raise click.ClickException(f"--fbx {fbx}: needs the program `blender`, which is not installed "
                                   "(`make blender` installs it)")


def _require_file(path: str, option: str, what: str) -> Path:
    """An input file that exists, checked before anything heavy is imported (one-line error if not)."""
    found = Path(path)
    if found.is_dir():
        raise click.ClickException(f"{option} {path}: is a directory, not {what}")
    if not found.is_file():
        raise click.ClickException(f"{option} {path}: {what} not found")
    return found


def _require_checkpoint(checkpoint: str, device: str | None = None) -> None:
    """The checkpoint exists, and a CUDA device asked for is there (torch is imported only to check CUDA)."""
    name = _device(device)
    if name.startswith("cuda"):
        from omniges.device import DeviceError, resolve_device

        try:
            resolve_device(name)
        except DeviceError as error:
            raise click.ClickException(str(error)) from None
    if not Path(checkpoint).is_file():
        raise click.ClickException(f"{checkpoint}: no trained model. Train one with `snakemake -j2 train_multitask` "
                                   "(or `make demo`), or pass --checkpoint")


def _read_motion(path: str) -> dict:
    from omniges.data.beat2 import Beat2Error, read_motion

    try:
        return read_motion(path)
    except Beat2Error as error:
        raise click.ClickException(str(error)) from None


def _words(transcript: str | None, textgrid: str | None, seconds: float,
           audio: str = "") -> list[tuple[str, float, float]] | None:
    """Timed words from a TextGrid (which must fit the audio), or a plain transcript spread evenly over the audio."""
    if textgrid:
        from omniges.data.transcript import check_words_fit, read_textgrid

        try:
            words = read_textgrid(textgrid)
            check_words_fit(words, seconds, textgrid, audio)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        return [(w, s, e) for w, s, e in words]
    if transcript:
        from omniges.render.compare import spread_words

        return spread_words(transcript.split(), seconds)
    return None


DEVICE_OPTION = click.option("--device", default=None,
                             help="auto | cpu | cuda | cuda:N (default: compute.device in params).")
generation_options = [
    click.option("--checkpoint", default=DEFAULT_CHECKPOINT, show_default=True, help=CHECKPOINT_HELP),
    click.option("--steps", type=click.IntRange(1, 64), default=None,
                 help="Sampler steps (default: params; --stream at full size on a CPU: 1 keeps up)."),
    click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (default: params)."),
    click.option("--seed", type=int, default=0, show_default=True, help="Noise seed (same seed, same motion)."),
    DEVICE_OPTION,
]


def with_generation_options(func):
    for option in reversed(generation_options):
        func = option(func)
    return func


@main.command()
@click.option("--audio", required=True, type=click.Path(dir_okay=False),
              help="Speech to gesture for: wav/flac/ogg/mp3, any sample rate, mono or stereo, any length "
                   "(silence gives idle motion).")
@click.option("--transcript", default=None, help="Optional transcript text (spread evenly over the audio).")
@click.option("--textgrid", default=None, type=click.Path(dir_okay=False),
              help="Optional Praat TextGrid with word timings (better than --transcript).")
@click.option("--out", required=True, help="Output video (.mp4) with the speech as its sound track.")
@click.option("--npz", default=None, help="Also export the motion as a BEAT2 / SMPL-X .npz.")
@click.option("--bvh", default=None, help="Also export the motion as a BVH of the SMPL-X skeleton (Blender).")
@click.option("--glb", default=None, help="Also export a binary glTF: skinned body, SMPL-X skeleton, animation.")
@click.option("--fbx", default=None, help="Also export an FBX of the same (Unity / Unreal; needs Blender).")
@click.option("--speaker", type=int, default=None,
              help="Gesture in the style of this speaker id of the checkpoint's corpus (default: generation.speaker "
                   "in params, else the unknown speaker).")
@click.option("--stream", "live", is_flag=True,
              help="Generate live: play the file as streamed speech, frames decided hop by hop (latency report).")
@click.option("--lookahead", type=click.FloatRange(0, 5), default=0.5, show_default=True,
              help="--stream: seconds of future speech a frame may see (0: causal).")
@click.option("--hop", type=click.FloatRange(0.1, 5), default=None,
              help="--stream: seconds between generations (default 0.267, two gesture tokens).")
@click.option("--realtime", is_flag=True, help="--stream: push the speech at its real pace (wall-clock latency).")
@click.option("--latency-report", default=None, help="--stream: write the latency report here (.json).")
@with_generation_options
def generate(audio: str, transcript: str | None, textgrid: str | None, out: str, npz: str | None, bvh: str | None,
             glb: str | None, fbx: str | None, speaker: int | None, live: bool, lookahead: float, hop: float | None,
             realtime: bool, latency_report: str | None, checkpoint: str, steps: int | None, guidance: float | None,
             seed: int, device: str | None) -> None:
    """A2G: speech -> full-body SMPL-X gesture, rendered to a video with sound (and npz / BVH / glTF / FBX files)."""
    if not live and (realtime or latency_report or hop is not None):
        raise click.ClickException("--realtime, --hop and --latency-report go with --stream")
    report_path = _check_out(latency_report, ".json", "--latency-report") if latency_report else None
    out_path = _check_out(out, ".mp4")
    motion_files = {suffix: _check_out(value, suffix, f"--{suffix[1:]}")
                    for suffix, value in ((".npz", npz), (".bvh", bvh), (".glb", glb), (".fbx", fbx)) if value}
    _require_file(audio, "--audio", "audio file")
    if textgrid:
        _require_file(textgrid, "--textgrid", "TextGrid file")
    _require_checkpoint(checkpoint, device)
    _check_blender(fbx)
    from omniges.features.audio import SAMPLE_RATE, AudioError
    from omniges.inference import a2g_to_files, load_speech

    try:
        wave = load_speech(audio)
    except AudioError as error:
        raise click.ClickException(str(error)) from None
    words = _words(transcript, textgrid, len(wave) / SAMPLE_RATE, audio)
    model = _model(checkpoint, steps, guidance, seed, device)
    try:
        model.speaker_index(speaker)
    except ValueError as error:
        source = "--speaker" if speaker is not None else "generation.speaker (params.yaml)"
        raise click.ClickException(f"{source}: {error}") from None
    if live:
        motion = _stream_to_files(model, wave, words, out_path, motion_files, report_path, speaker=speaker,
                                  lookahead=lookahead, hop=hop, realtime=realtime, seed=seed, steps=steps,
                                  guidance=guidance)
    else:
        motion = a2g_to_files(model, wave, words, out_path, motion_files, speaker=speaker)
    for path in motion_files.values():
        click.echo(f"motion   {path}")
    click.echo(f"video    {out_path} ({len(motion['poses']) / 30:.1f} s)")


def _stream_to_files(model, wave, words, out_path: Path, motion_files: dict[str, Path], report_path: Path | None, *,
                     speaker: int | None, lookahead: float, hop: float | None, realtime: bool, seed: int,
                     steps: int | None, guidance: float | None) -> dict:
    """`generate --stream`: the speech pushed in 20 ms chunks (at its pace with --realtime), the frames collected,
    then the same files as offline and a latency report."""
    import json
    import time

    from omniges.features.audio import SAMPLE_RATE
    from omniges.inference import a2g_to_files
    from omniges.streaming import A2GStream, StreamSettings, concatenate, latency_report

    try:
        settings = StreamSettings(lookahead=lookahead, **({"hop": hop} if hop is not None else {}))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    stream = A2GStream(model, settings, seed=seed, speaker=speaker, steps=steps, guidance=guidance)
    chunk = SAMPLE_RATE // 50
    results, emitted, began = [], [], time.perf_counter()
    for first in range(0, len(wave), chunk):
        if realtime:
            time.sleep(max(0.0, began + first / SAMPLE_RATE - time.perf_counter()))
        for result in stream.push(wave[first:first + chunk]):
            results.append(result)
            emitted.append(time.perf_counter() - began)
    for result in stream.finish():
        results.append(result)
        emitted.append(time.perf_counter() - began)
    report = {"lookahead_s": settings.lookahead_s, "hop_s": settings.hop_s,
              "paced": realtime, **latency_report(results, emitted=emitted if realtime else None)}
    if report_path:
        report_path.write_text(json.dumps(report, indent=2))
    if report["frames"]:
        click.echo(f"latency  median {report['latency_median_s']:.3f} s, p95 {report['latency_p95_s']:.3f} s, first "
                   f"frame {report['first_frame_s']:.3f} s; compute {report['compute_per_speech_second']:.3f} s per "
                   "second of speech" + (f" ({report_path})" if report_path else ""))
    return a2g_to_files(model, wave, words, out_path, motion_files, motion=concatenate(results))


@main.command()
@click.option("--checkpoint", default=DEFAULT_CHECKPOINT, show_default=True, help=CHECKPOINT_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@DEVICE_OPTION
def serve(checkpoint: str, host: str, port: int, device: str | None) -> None:
    """A2G web app (Gradio, offline): speech in; a video with sound and the motion files out."""
    from omniges.serve import launch

    model = _model(checkpoint, None, None, 0, device)
    if "a2g" not in model.tasks:
        raise click.ClickException(f"{checkpoint}: trained for {sorted(model.tasks)}, not a2g; serve the multitask "
                                   "or a2g model")
    click.echo(f"serving {checkpoint} on http://{host}:{port} (Ctrl-C stops)")
    launch(model, host=host, port=port)


@main.command()
@click.option("--motion", required=True, type=click.Path(dir_okay=False), help="BEAT2 / SMPL-X motion .npz.")
@with_generation_options
def transcribe(motion: str, checkpoint: str, steps: int | None, guidance: float | None, seed: int,
               device: str | None) -> None:
    """G2T: the words a gesture sequence most likely accompanied."""
    _require_file(motion, "--motion", "motion file")
    _require_checkpoint(checkpoint, device)
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

    out_path = _check_out(out, ".wav")
    _require_file(motion, "--motion", "motion file")
    _require_checkpoint(checkpoint, device)
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
              help="SMPL-X model .npz: its mesh instead of the built-in skinned mannequin.")
def render_cmd(motion: str, audio: str | None, out: str, smplx_model: str | None) -> None:
    """Render a BEAT2 / SMPL-X motion .npz to a video (with sound when --audio is given)."""
    out_path = _check_out(out, ".mp4")
    _require_file(motion, "MOTION", "motion file")
    if audio:
        _require_file(audio, "--audio", "audio file")
    from omniges.features.audio import AudioError, load_audio
    from omniges.render.video import render_comparison

    data = _read_motion(motion)
    wave = None
    if audio:
        try:
            wave = load_audio(audio, 16000, require_nonsilent=False)
        except AudioError as error:
            raise click.ClickException(str(error)) from None
    render_comparison(out_path, {Path(motion).stem: data}, audio=wave, sr=16000, fps=30, model_path=smplx_model)
    click.echo(f"video    {out_path}")


@main.command("export")
@click.argument("motion", type=click.Path(dir_okay=False))
@click.option("--bvh", default=None, help="Write a BVH of the SMPL-X skeleton (30 fps; Blender imports it).")
@click.option("--npz", default=None, help="Write a SMPL-X .npz (BEAT2 layout, AMASS frame-rate key, FK joints).")
@click.option("--glb", default=None, help="Write a binary glTF: skinned body, SMPL-X skeleton, 30 fps animation.")
@click.option("--fbx", default=None, help="Write an FBX of the same through Blender (Unity / Unreal).")
@click.option("--no-jaw", is_flag=True, help="Leave the jaw out of the BVH.")
def export_cmd(motion: str, bvh: str | None, npz: str | None, glb: str | None, fbx: str | None,
               no_jaw: bool) -> None:
    """Export a BEAT2 / SMPL-X motion .npz for Blender, engines and retargeting: BVH, npz, glTF, FBX."""
    from omniges.data.skinned_body import check_motion
    from omniges.export import write_bvh, write_fbx, write_glb, write_npz

    if not (bvh or npz or glb or fbx):
        raise click.UsageError("nothing to write: give --bvh, --npz, --glb and/or --fbx")
    outputs = {}
    for option, value, suffix in (("--bvh", bvh, ".bvh"), ("--npz", npz, ".npz"), ("--glb", glb, ".glb"),
                                  ("--fbx", fbx, ".fbx")):
        if value:
            outputs[suffix] = _check_out(value, suffix, option)
    _check_blender(fbx)
    data = _read_motion(motion)
    try:
        check_motion(data["poses"], data["trans"])
    except ValueError as error:
        raise click.ClickException(f"{motion}: {error}") from None
    if ".bvh" in outputs:
        write_bvh(outputs[".bvh"], data["poses"], data["trans"], jaw=not no_jaw)
        click.echo(f"bvh      {outputs['.bvh']} ({len(data['poses'])} frames at 30 fps)")
    if ".npz" in outputs:
        write_npz(outputs[".npz"], data)
        click.echo(f"motion   {outputs['.npz']}")
    for suffix, writer in ((".glb", write_glb), (".fbx", write_fbx)):
        if suffix in outputs:
            try:
                writer(outputs[suffix], data["poses"], data["trans"])
            except (OSError, RuntimeError) as error:
                raise click.ClickException(f"{outputs[suffix]}: {error}") from None
            click.echo(f"{suffix[1:]:8s} {outputs[suffix]} ({len(data['poses'])} frames at 30 fps)")
