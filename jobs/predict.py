"""`ray job submit ... -- python jobs/predict.py ARGS`: same arguments as `drml predict` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "predict", *sys.argv[1:]]
    main()
