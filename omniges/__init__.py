"""Omniges: one multi-modal diffusion transformer for co-speech gesture (A2G, T2G, G2T, G2A)."""

__version__ = "0.1.0"
