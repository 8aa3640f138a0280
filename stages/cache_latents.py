"""Stage `cache_latents`: see omniges.pipeline.cache_latents."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, _ = parse(pipeline.cache_latents.__doc__)
    pipeline.cache_latents(params)
