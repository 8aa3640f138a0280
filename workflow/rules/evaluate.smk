# Evaluation with reference rows, and comparison videos with sound.


rule evaluate:
    input:
        "stages/evaluate.py",
        "omniges/evaluation/evaluate.py",
        "omniges/evaluation/report.py",
        "omniges/evaluation/metrics.py",
        "omniges/data/kinematics.py",
        "omniges/evaluation/sync.py",
        "omniges/evaluation/iconic.py",
        "omniges/evaluation/evaluator.py",
        "omniges/inference.py",
        "omniges/models/flow.py",
        "omniges/models/flow_sampler.py",
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
        "stages/render.py",
        "omniges/render/compare.py",
        "omniges/render/video.py",
        "omniges/render/skeleton.py",
        "omniges/render/figure.py",
        "omniges/render/raster.py",
        "omniges/data/skinned_body.py",
        "omniges/render/framing.py",
        "omniges/data/kinematics.py",
        "omniges/render/smplx_mesh.py",
        "omniges/inference.py",
        "omniges/models/flow.py",
        "omniges/models/flow_sampler.py",
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
