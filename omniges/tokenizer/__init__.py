"""The gesture tokenizer: one GestureLSM-compatible RVQVAE per body part (rvqvae.py), the four as one tokenizer
(processor.py), their training loop and reconstruction report (training.py), and the rvqvae_<part> /
cache_latents stages' logic (stage.py)."""
