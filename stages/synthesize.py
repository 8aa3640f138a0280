"""Stage `synthesize`: see omniges.pipeline.synthesize."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, _ = parse(pipeline.synthesize.__doc__)
    pipeline.synthesize(params)
