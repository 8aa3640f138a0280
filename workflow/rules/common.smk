# Code deps derived from imports (omniges/dag.py), and the cluster resources shared by the GPU rules.
from pathlib import Path

from omniges.dag import code_deps as _code_deps


def code_deps(stage):
    """The sources stage `stage` imports, in the working directory's tree (a clone's, not the installed one's)."""
    return _code_deps(stage, Path.cwd())


SLURM = config.get("compute", {}).get("slurm", {})
GPUS, NODES = SLURM.get("gpus_per_node", 1), SLURM.get("nodes", 1)


def gpu_resources(gpus=GPUS, nodes=NODES):
    """What the SLURM profile asks for (compute.slurm in params.yaml); the local profile ignores it."""
    resources = dict(
        slurm_partition=SLURM.get("partition", "gpu"),
        gres=f"gpu:{gpus}",
        nodes=nodes,
        cpus_per_task=SLURM.get("cpus_per_task", 8),
        mem_mb=SLURM.get("mem_mb", 64000),
        runtime=SLURM.get("runtime", 720),
    )
    if nodes > 1:  # the rule's shell starts one srun task per node itself (omniges.launch)
        resources.update(mpi="srun", tasks=nodes, tasks_per_gpu=0)
    return resources
