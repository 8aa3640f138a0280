# Data: embedded corpus -> per-clip LMDB records + train-only normalisation statistics.


rule synthesize:
    input:
        "stages/synthesize.py",
        "omniges/data/synthetic/__init__.py",
        "omniges/data/synthetic/corpus.py",
        "omniges/data/synthetic/iconic.py",
        "omniges/data/synthetic/motion.py",
        "omniges/data/synthetic/pose_space.py",
        "omniges/data/synthetic/script.py",
        "omniges/data/synthetic/speakers.py",
        "omniges/data/synthetic/speech.py",
        "omniges/data/synthetic/espeak.py",
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
        "omniges/data/transcript.py",
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
