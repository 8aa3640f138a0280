"""Stage `features`: see omniges.pipeline.features."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, _ = parse(pipeline.features.__doc__)
    pipeline.features(params)
