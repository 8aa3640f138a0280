# Gesture tokenizer: one RVQVAE per body part, then latents + codes for every clip.
PARTS = ["upper", "hands", "lower_trans", "face"]


rule rvqvae:
    input:
        code_deps("rvqvae"),
        "data/cache/clips.lmdb",
        "data/cache/stats.npz",
    output:
        "results/rvqvae/{part}.pth",
        "results/rvqvae/{part}.json",
    wildcard_constraints:
        part="|".join(PARTS),
    params:
        rvqvae=config["rvqvae"],
    threads: 1
    resources:
        **gpu_resources(gpus=1, nodes=1),
    log:
        "logs/rvqvae_{part}.log",
    shell:
        "OMP_NUM_THREADS={threads} python stages/rvqvae.py --part {wildcards.part} 2>&1 | tee {log}"


rule cache_latents:
    input:
        code_deps("cache_latents"),
        "data/cache/clips.lmdb",
        expand("results/rvqvae/{part}.pth", part=PARTS),
    output:
        directory("data/cache/latents.lmdb"),
        "results/rvqvae/latent_scale.json",
    threads: 2
    log:
        "logs/cache_latents.log",
    shell:
        "OMP_NUM_THREADS={threads} python stages/cache_latents.py 2>&1 | tee {log}"
