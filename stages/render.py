"""Stage `render_<experiment>`: see omniges.pipeline.render."""

from common import parse

from omniges import pipeline

if __name__ == "__main__":
    params, args = parse(pipeline.render.__doc__, [("--experiment", {"required": True})])
    pipeline.render(params, args.experiment)
