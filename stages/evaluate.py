"""Stage `evaluate_<experiment>`: see omniges.pipeline.evaluate."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, args = parse(pipeline.evaluate.__doc__, [("--experiment", {"required": True})])
    pipeline.evaluate(params, args.experiment)
