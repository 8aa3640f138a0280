"""Stage `train_<experiment>`: see omniges.pipeline.train. Runs under `accelerate launch` as well as plain python."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, args = parse(pipeline.train.__doc__, [("--experiment", {"required": True})])
    pipeline.train(params, args.experiment)
