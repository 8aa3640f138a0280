# Data: embedded corpus -> per-clip LMDB records + train-only normalisation statistics.


rule synthesize:
    input:
        code_deps("synthesize"),
    output:
        directory(config["data"]["synthetic_root"]),
    params:
        data=config["data"],
    log:
        "logs/synthesize.log",
    shell:
        "python stages/synthesize.py 2>&1 | tee {log}"


rule preprocess:
    input:
        code_deps("preprocess"),
        config["data"]["synthetic_root"],
    output:
        directory("data/cache/clips.lmdb"),
        "data/cache/stats.npz",
        "data/cache/preprocess_report.json",
    params:
        data=config["data"],
    threads: config["data"]["workers"]
    log:
        "logs/preprocess.log",
    shell:
        "python stages/preprocess.py 2>&1 | tee {log}"
