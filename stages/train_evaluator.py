"""Stage `train_evaluator`: see omniges.pipeline.train_evaluator."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, _ = parse(pipeline.train_evaluator.__doc__)
    pipeline.train_evaluator(params)
