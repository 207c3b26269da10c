"""`ray job submit ... -- python jobs/rl_meta_eval.py ARGS`: same arguments as `drml rl meta-eval` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "rl", "meta-eval", *sys.argv[1:]]
    main()
