"""`python -m omniges.launch --gpus G --nodes N SCRIPT [ARGS]`: a training stage with one process per GPU.

Under SLURM (SLURM_JOB_ID set) with G x N > 1 this becomes `accelerate launch` with G x N processes; on several
nodes, first one `srun` task per node, each launching its node's G processes with the machine rank
(SLURM_NODEID) and main address (first host of SLURM_JOB_NODELIST) from the SLURM environment. Anywhere else,
or for one GPU, the stage runs as `python SCRIPT ARGS` in this process's place (what the local profile does).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Mapping

PORT_BASE = 29500


def first_host(nodelist: str) -> str:
    """The first host of a SLURM hostlist: 'gpu[07-08,11],cpu01' -> 'gpu07'."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(f"SLURM_JOB_NODELIST {nodelist!r} is not a hostlist")
    prefix, ranges = match.groups()
    return prefix + re.split(r"[-,]", ranges)[0] if ranges else prefix


def accelerate_exe() -> str:
    """The `accelerate` next to this Python (the project's environment), else the one on PATH."""
    beside = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    return beside or shutil.which("accelerate") or "accelerate"


def launch_command(script: list[str], *, gpus: int, nodes: int, env: Mapping[str, str], node: bool = False,
                   cpus: int = 1) -> list[str]:
    """The command that runs `script` on `nodes` x `gpus` processes in the SLURM job described by `env`
    (`node`: this is already the per-node task of a multi-node job, which gets `cpus` CPUs and the GPUs)."""
    if gpus < 1 or nodes < 1:
        raise ValueError(f"--gpus and --nodes must be >= 1, got {gpus} and {nodes}")
    if "SLURM_JOB_ID" not in env or gpus * nodes == 1:
        return [sys.executable, *script]
    if nodes > 1 and not node:
        per_node = [sys.executable, "-m", "omniges.launch", "--gpus", str(gpus), "--nodes", str(nodes), "--node"]
        step = [f"--nodes={nodes}", "--ntasks-per-node=1", f"--cpus-per-task={cpus}", f"--gres=gpu:{gpus}"]
        return ["srun", *step, *per_node, *script]
    port = PORT_BASE + int(env["SLURM_JOB_ID"]) % 1000
    machine = ["--num_machines", str(nodes), "--machine_rank", env.get("SLURM_NODEID", "0"),
               "--main_process_ip", first_host(env.get("SLURM_JOB_NODELIST", "localhost")),
               "--main_process_port", str(port)] if nodes > 1 else ["--main_process_port", str(port)]
    return [accelerate_exe(), "launch", "--multi_gpu", "--num_processes", str(gpus * nodes), *machine, *script]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1, help="GPUs (processes) per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs of each node's task (multi-node)")
    parser.add_argument("--node", action="store_true", help="internal: this is the per-node task of a multi-node job")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("script", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = launch_command(args.script, gpus=args.gpus, nodes=args.nodes, env=os.environ, node=args.node,
                             cpus=args.cpus)
    if args.dry_run:
        print(" ".join(command))
        return
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
