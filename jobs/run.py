"""The entrypoint for ``ray job submit``: the same arguments as ``drml`` (any command, see ``drml --help``).

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/run.py tune configs/tune/crossner_politics_asha.yaml --output-dir /shared/runs/politics_asha

The driver joins the cluster through ``RAY_ADDRESS`` (``ray job submit`` sets it); every command comes
from the experiment registry, so a new experiment kind needs no new file here.
"""

import sys

from drml_ray.cli import main

if __name__ == "__main__":
    sys.argv[0] = "drml"
    main()
