"""Stage `rvqvae_<part>`: see omniges.pipeline.rvqvae."""

from common import parse

from omniges import pipeline
from omniges.data.body import PART_NAMES

if __name__ == "__main__":
    params, args = parse(pipeline.rvqvae.__doc__, [("--part", {"required": True, "choices": PART_NAMES})])
    pipeline.rvqvae(params, args.part)
