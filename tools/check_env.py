"""Environment check for mixmae_mm, loaded by path (needs no mmpretrain)."""
import runpy
from pathlib import Path
MODULE = Path(__file__).resolve().parents[1] / 'mixmae_mm/utils/check_env.py'
runpy.run_path(str(MODULE), run_name='__main__')
