"""Installing the package into an environment that already holds the
supported stack adds only the package: torch and mmcv are never declared
(pip would replace a user's CUDA builds), and the declared ranges admit the
verified versions."""
import json
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _declared():
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    blocks = [cfg['options']['install_requires'],
              *cfg['options.extras_require'].values()]
    return [Requirement(line) for block in blocks
            for line in block.splitlines() if line.strip()]


def test_torch_and_mmcv_are_never_declared():
    names = {r.name.lower() for r in _declared()}
    assert {'mmengine', 'mmpretrain', 'mmdet', 'mmsegmentation'} <= names
    assert not names & {'torch', 'torchvision', 'mmcv', 'mmcv-lite',
                        'numpy'}


def test_editable_install_into_this_environment_adds_only_the_package(
        tmp_path):
    report = tmp_path / 'report.json'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--dry-run',
        '--no-build-isolation', '--no-index', '--report',
        str(report), '-e', f'{ROOT}[det,seg,tests,tensorboard]'
    ], check=True, capture_output=True, text=True, timeout=300)
    install = json.loads(report.read_text())['install']
    assert [i['metadata']['name'] for i in install] == ['mixmae_mm']
