"""Train a model: ``python train.py --data DIR --model resnet18`` (same as ``python -m covid_core train``)."""

import sys

from covid_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
