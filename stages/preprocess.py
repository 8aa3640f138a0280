"""Stage `preprocess`: see omniges.pipeline.preprocess."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, _ = parse(pipeline.preprocess.__doc__)
    pipeline.preprocess(params)
