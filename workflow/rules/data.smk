# Data: embedded corpus -> per-clip LMDB records + train-only normalisation statistics.


rule synthesize:
    input:
        "stages/synthesize.py",
        "omniges/data/synthetic.py",
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
        "stages/preprocess.py",
        "omniges/data/preprocess.py",
        "omniges/data/beat2.py",
        "omniges/data/body.py",
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
