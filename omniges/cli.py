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
