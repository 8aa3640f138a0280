# Generator training (one model per experiment) and the FGD evaluator.
EXPERIMENTS = list(config["training"]["experiments"])  # every defined experiment has its targets ...
RUN = list(config["training"].get("run", ["multitask"]))  # ... `all` builds these (params.yaml training.run)
# A lone training takes every core (2 threads: 1.4x a thread's speed); several share them, a thread each
TRAIN_THREADS = max(1, workflow.cores // len(RUN))
# The two longest trainings start first, so the short ones fill the other core instead of trailing at the end.
# A rule priority orders only the jobs a target needs (a profile's `prioritize:` would add these to every DAG).
TRAIN_PRIORITY = {"multitask": 2, "a2g": 1}


rule train_evaluator:
    input:
        code_deps("train_evaluator"),
        "data/cache/clips.lmdb",
    output:
        "results/evaluator.pth",
    params:
        evaluation=config["evaluation"]["evaluator"],
    threads: 1
    log:
        "logs/train_evaluator.log",
    shell:
        "OMP_NUM_THREADS={threads} python stages/train_evaluator.py 2>&1 | tee {log}"


rule train:
    input:
        code_deps("train"),
        "data/cache/features.lmdb",
        "data/cache/vocab.json",
        "data/cache/latents.lmdb",
        "results/rvqvae/latent_scale.json",
    output:
        "results/models/{experiment}/model.pt",
        "results/models/{experiment}/train_metrics.json",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    params:
        model=config["model"],
        flow=config["flow"],
        training=config["training"],
        gpus=GPUS,
        nodes=NODES,
    threads: TRAIN_THREADS
    priority: lambda wildcards: TRAIN_PRIORITY.get(wildcards.experiment, 0)
    resources:
        **gpu_resources(),
    log:
        "logs/train_{experiment}.log",
    shell:
        "OMP_NUM_THREADS={threads} python -m omniges.launch --gpus {params.gpus} --nodes {params.nodes} "
        "--cpus {resources.cpus_per_task} stages/train.py --experiment {wildcards.experiment} 2>&1 | tee {log}"


for _experiment in EXPERIMENTS:

    rule:
        name:
            f"train_{_experiment}"
        input:
            f"results/models/{_experiment}/model.pt",
