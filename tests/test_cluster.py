"""Clusters: what the SLURM profile would submit (dry run), the per-node launch, and the accelerate configs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from omniges.launch import first_host, launch_command

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


class Resources(dict):
    """Snakemake job resources with attribute access, as the SLURM executor reads them."""

    __getattr__ = dict.__getitem__


def dry_run_jobs(work: Path, *extra: str) -> dict[str, dict]:
    """`snakemake --profile workflow/profiles/slurm -n -p train_multitask`: resources and shell command per rule."""
    text = subprocess.run([str(BIN / "snakemake"), "--profile", "workflow/profiles/slurm", "-n", "-p",
                           "train_multitask", *extra], cwd=work, capture_output=True, text=True, check=True).stdout
    jobs: dict[str, dict] = {}
    rule = None
    for line in text.splitlines():
        if line.startswith("rule "):
            rule = line.split()[1].rstrip(":")
            jobs[rule] = {}
        elif rule and line.strip().startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            jobs[rule]["resources"] = Resources(
                {k.strip(): int(v) if v.isdigit() else v for k, v in pairs if "<TBD>" not in v})
        elif rule and line.startswith("Shell command:"):
            jobs[rule]["shell"] = line.partition(": ")[2]
    return jobs


def sbatch_line(resources: Resources) -> str:
    """The sbatch call the SLURM executor plugin builds for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=resources, threads=1, name="train")
    params = dict(run_uuid="u", slurm_logfile="log", comment_str="rule_train", account="",
                  partition=f"-p {resources['slurm_partition']}", workdir="")
    return get_submit_command(job, params) + set_gres_string(job)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the working tree (the DAG's inputs exist, nothing has run)."""
    work = tmp_path_factory.mktemp("cluster") / "repo"
    outputs = {".git", ".snakemake", "data", "results", "logs", "mlflow.db", ".venv"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if (Path(folder) == ROOT and n in outputs) or n in ("__pycache__", ".pytest_cache")}

    shutil.copytree(ROOT, work, ignore=ignore)
    return work


def test_slurm_profile_gives_training_gpus_from_params(repo):
    slurm = yaml.safe_load((repo / "params.yaml").read_text())["compute"]["slurm"]
    jobs = dry_run_jobs(repo)
    train = jobs["train"]["resources"]
    assert train["gres"] == f"gpu:{slurm['gpus_per_node']}" and train["nodes"] == slurm["nodes"]
    assert (train["slurm_partition"], train["cpus_per_task"], train["mem_mb"], train["runtime"]) == (
        slurm["partition"], slurm["cpus_per_task"], slurm["mem_mb"], slurm["runtime"])
    call = sbatch_line(train)
    assert f"--gres=gpu:{slurm['gpus_per_node']}" in call and f"-p {slurm['partition']}" in call
    assert f"--mem {slurm['mem_mb']}" in call and f"-t {slurm['runtime']}" in call
    assert "--cpus-per-task" in call
    launch = f"python -m omniges.launch --gpus 1 --nodes 1 --cpus {slurm['cpus_per_task']} stages/train.py --exp"
    assert launch in jobs["train"]["shell"]
    assert jobs["rvqvae"]["resources"]["gres"] == "gpu:1"


def test_slurm_two_nodes_of_four_gpus(repo, tmp_path):
    override = tmp_path / "cluster.yaml"
    override.write_text(yaml.safe_dump({"compute": {"slurm": {"nodes": 2, "gpus_per_node": 4, "partition": "a100"}}}))
    jobs = dry_run_jobs(repo, "--configfile", str(override))
    train = jobs["train"]["resources"]
    call = sbatch_line(train)
    assert "--nodes=2" in call and "--gres=gpu:4" in call and "-p a100" in call and "--ntasks=2" in call
    assert "--ntasks-per-gpu" not in call
    shell = jobs["train"]["shell"]
    script = re.search(r"omniges.launch (.*?) 2>&1", shell).group(1).split()
    assert script[:6] == ["--gpus", "4", "--nodes", "2", "--cpus", "8"]
    # the batch step starts one task per node (with its CPUs and GPUs); each launches its node's 4 processes of 8
    env = {"SLURM_JOB_ID": "4242"}
    outer = launch_command(script[6:], gpus=4, nodes=2, env=env, cpus=8)
    assert outer[:5] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=8", "--gres=gpu:4"]
    assert "--node" in outer
    task_env = {**env, "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}  # set by srun for each task
    inner = launch_command(script[6:], gpus=4, nodes=2, env=task_env, node=True)
    flags = dict(zip(inner[2::2], inner[3::2], strict=False))
    assert inner[1:3] == ["launch", "--multi_gpu"]
    assert " ".join(inner).endswith("stages/train.py --experiment multitask")
    for flag, value in {"--num_processes": "8", "--num_machines": "2", "--machine_rank": "1",
                        "--main_process_ip": "gpu07", "--main_process_port": "29742"}.items():
        assert inner[inner.index(flag) + 1] == value, flags


def test_launch_outside_slurm_and_single_gpu_is_the_plain_stage():
    script = ["stages/train.py", "--experiment", "a2g"]
    assert launch_command(script, gpus=4, nodes=1, env={}) == [sys.executable, *script]
    assert launch_command(script, gpus=1, nodes=1, env={"SLURM_JOB_ID": "1"}) == [sys.executable, *script]
    single_node = launch_command(script, gpus=4, nodes=1, env={"SLURM_JOB_ID": "7"})
    assert single_node[single_node.index("--num_processes") + 1] == "4" and "--machine_rank" not in single_node
    assert first_host("node3") == "node3" and first_host("a[001-004],b1") == "a001" and first_host("g[5,9]") == "g5"
    with pytest.raises(ValueError):
        launch_command(script, gpus=0, nodes=1, env={})


PROBE = """import os, sys
from pathlib import Path
from accelerate import Accelerator
accelerator = Accelerator(cpu=True)
Path(sys.argv[1], f"rank{accelerator.process_index}").write_text(f"{accelerator.num_processes}")
"""


@pytest.mark.parametrize("name", ["cpu", "cpu_multi", pytest.param("multi_gpu", marks=pytest.mark.slow)])
def test_accelerate_configs_start_the_processes_they_say(name, tmp_path):
    """Each config launches its num_processes (the GPU ones on CPU processes here: the probe asks for cpu=True)."""
    config = ROOT / "envs/accelerate" / f"{name}.yaml"
    expected = yaml.safe_load(config.read_text())["num_processes"]
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    subprocess.run([str(BIN / "accelerate"), "launch", "--config_file", str(config), str(probe), str(tmp_path)],
                   capture_output=True, text=True, timeout=300, check=True)
    ranks = {p.name: p.read_text() for p in tmp_path.glob("rank*")}
    assert ranks == {f"rank{r}": str(expected) for r in range(expected)}
