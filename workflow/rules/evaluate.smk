# Evaluation with reference rows, and comparison videos with sound.


rule evaluate:
    input:
        code_deps("evaluate"),
        "results/models/{experiment}/model.pt",
        "results/evaluator.pth",
    output:
        "results/metrics/{experiment}.json",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    params:
        evaluation=config["evaluation"],
        generation=config["generation"],
    threads: 1
    log:
        "logs/evaluate_{experiment}.log",
    shell:
        "OMP_NUM_THREADS={threads} python stages/evaluate.py --experiment {wildcards.experiment} 2>&1 | tee {log}"


rule render:
    input:
        code_deps("render"),
        "results/models/{experiment}/model.pt",
    output:
        directory("results/videos/{experiment}"),
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    params:
        render=config["render"],
        generation=config["generation"],
    threads: 1
    log:
        "logs/render_{experiment}.log",
    shell:
        "OMP_NUM_THREADS={threads} python stages/render.py --experiment {wildcards.experiment} 2>&1 | tee {log}"


for _experiment in EXPERIMENTS:

    rule:
        name:
            f"evaluate_{_experiment}"
        input:
            f"results/metrics/{_experiment}.json",

    rule:
        name:
            f"render_{_experiment}"
        input:
            f"results/videos/{_experiment}",
