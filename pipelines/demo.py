"""`make demo`: the demo pipeline (pipelines/demo.yaml). Extra arguments go to :mod:`pipelines.run`,
e.g. ``python -m pipelines.demo --meshes my_models/`` or ``--smallest``."""

import sys
from pathlib import Path

from pipelines.run import main

if __name__ == "__main__":
    sys.exit(main([str(Path(__file__).with_name("demo.yaml")), *sys.argv[1:]]))
