"""Shared argument parsing for the stage CLIs: `--params` plus `key=value` overrides."""

from __future__ import annotations

import argparse
import logging

import yaml

from omniges.config import Params, ParamsError, load_params


def parse(description: str, extra: list[tuple[str, dict]] | None = None) -> tuple[Params, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameter file (default params.yaml)")
    for flag, kwargs in extra or []:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. data.workers=1")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:  # a bad parameter file or override is a message, not a traceback
        params = load_params(args.params, {k: yaml.safe_load(v) for k, v in overrides.items()})
    except ParamsError as error:
        parser.exit(2, f"{error}\n")
    if params.compute.device.startswith("cuda"):  # a missing GPU is one line before any work starts
        from omniges.device import DeviceError, resolve_device

        try:
            resolve_device(params.compute.device)
        except DeviceError as error:
            parser.exit(2, f"{args.params}: {error}\n")
    return params, args
