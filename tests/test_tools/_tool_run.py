"""Running the repository's tools as a user does, for the hand-off tests:
a subprocess from the repository root that must succeed."""
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def run_tool(args, timeout=900):
    """``python ARGS`` from the repository root; fails the test with the
    tails of stdout and stderr unless it exits 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    return res


def load_checkpoint(path):
    """A checkpoint the test itself wrote (full unpickling)."""
    return torch.load(path, map_location='cpu', weights_only=False)
