"""`ray job submit ... -- python jobs/evaluate.py ARGS`: same arguments as `drml evaluate` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "evaluate", *sys.argv[1:]]
    main()
