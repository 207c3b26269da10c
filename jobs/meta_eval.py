"""`ray job submit ... -- python jobs/meta_eval.py ARGS`: same arguments as `drml meta-eval` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "meta-eval", *sys.argv[1:]]
    main()
