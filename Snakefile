# Omniges pipeline. Same DAG as dvc.yaml (tests/test_dag.py fails when they drift).
#   snakemake --profile workflow/profiles/local all          # whole pipeline on the embedded corpus
#   snakemake -j6 train_a2g / evaluate_multitask / render_a2g
#   snakemake --profile workflow/profiles/slurm train_multitask
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        expand("results/metrics/{experiment}.json", experiment=RUN),
        expand("results/videos/{experiment}", experiment=RUN),


# Every defined experiment's metrics: the single-task models beside the multitask one (benchmarks/four_tasks.py)
rule compare:
    input:
        expand("results/metrics/{experiment}.json", experiment=EXPERIMENTS),
