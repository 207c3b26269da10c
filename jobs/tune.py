"""`ray job submit ... -- python jobs/tune.py ARGS`: same arguments as `drml tune` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "tune", *sys.argv[1:]]
    main()
