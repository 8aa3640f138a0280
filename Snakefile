# Omniges pipeline. Same DAG as dvc.yaml (tests/test_dag.py fails when they drift).
#   snakemake -j2 all            # whole pipeline on the embedded corpus
#   snakemake --profile workflow/profiles/slurm train_a2g
configfile: "params.yaml"


include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/tokenizer.smk"


rule all:
    input:
        rules.preprocess.output,
        rules.features.output,
        rules.cache_latents.output,
