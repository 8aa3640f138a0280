# Features: WavLM + MFCC + text states per motion frame, and the G2T vocabulary.


rule features:
    input:
        code_deps("features"),
        "data/cache/clips.lmdb",
    output:
        directory("data/cache/features.lmdb"),
        "data/cache/vocab.json",
    params:
        features=config["features"],
    threads: 2
    log:
        "logs/features.log",
    shell:
        "OMP_NUM_THREADS={threads} python stages/features.py 2>&1 | tee {log}"
