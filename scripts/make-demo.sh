#!/usr/bin/env bash
# Regenerates the bundled demo model and input from the committed S4D fixture.
# Needs python3 with numpy for the CSV export.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=tests/fixtures/s4d/s4d-glu-prenorm
cargo run --release --locked -q -p tinyssm-tools --bin tinyssm -- convert "$SRC" -o models/demo-s4d.tssm
python3 - "$SRC/input.npy" models/demo-s4d-input.csv <<'PY'
import sys, numpy as np
x = np.load(sys.argv[1])
with open(sys.argv[2], "w") as f:
    f.write(",".join(f"ch{i}" for i in range(x.shape[1])) + "\n")
    for row in x:
        f.write(",".join(repr(float(v)) for v in row) + "\n")
PY
