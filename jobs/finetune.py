"""`ray job submit ... -- python jobs/finetune.py ARGS`: same arguments as `drml finetune` (see --help)."""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv = ["drml", "finetune", *sys.argv[1:]]
    main()
