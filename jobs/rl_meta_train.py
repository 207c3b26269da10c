"""`ray job submit ... -- python jobs/rl_meta_train.py ARGS`: same arguments as `drml rl meta-train` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "rl", "meta-train", *sys.argv[1:]]
    main()
