"""`ray job submit ... -- python jobs/rl_transfer.py ARGS`: same arguments as `drml rl transfer` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "rl", "transfer", *sys.argv[1:]]
    main()
