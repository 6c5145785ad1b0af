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
    blocks = [
        cfg['options']['install_requires'],
        *cfg['options.extras_require'].values()
    ]
    return [
        Requirement(line) for block in blocks for line in block.splitlines()
        if line.strip()
    ]


def test_torch_and_mmcv_are_never_declared():
    names = {r.name.lower() for r in _declared()}
    assert {'mmengine', 'mmpretrain', 'mmdet', 'mmsegmentation'} <= names
    assert not names & {'torch', 'torchvision', 'mmcv', 'mmcv-lite', 'numpy'}


def test_editable_install_into_this_environment_adds_only_the_package(
        tmp_path):
    report = tmp_path / 'report.json'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--dry-run',
        '--no-build-isolation', '--no-index', '--report',
        str(report), '-e', f'{ROOT}[det,seg,tests,tensorboard]'
    ],
                   check=True,
                   capture_output=True,
                   text=True,
                   timeout=300)
    install = json.loads(report.read_text())['install']
    assert [i['metadata']['name'] for i in install] == ['mixmae_mm']


def _files_under(folder):
    """Files of a checkout folder as the package ships them (no caches)."""
    return sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob('*')
        if p.is_file() and '__pycache__' not in p.parts and p.suffix != '.pyc')


def test_sdist_and_wheel_carry_configs_tools_index_and_licence(tmp_path):
    """`python -m build`: the wheel holds mixmae_mm/.mim/ with copies of
    every file of configs/, tools/ and model-index.yml (what mim and the
    mixmae_mm:: configs read), the licence and the metadata; the build
    leaves the checkout's .mim links alone."""
    import tarfile
    import zipfile
    from email.parser import Parser

    import mixmae_mm
    res = subprocess.run([
        sys.executable, '-m', 'build', '--no-isolation', '--outdir',
        str(tmp_path),
        str(ROOT)
    ],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    version = mixmae_mm.__version__
    wheel = tmp_path / f'mixmae_mm-{version}-py3-none-any.whl'
    sdist = tmp_path / f'mixmae_mm-{version}.tar.gz'
    assert wheel.is_file() and sdist.is_file(), sorted(tmp_path.iterdir())

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = _files_under('configs') + _files_under('tools') + [
        'model-index.yml'
    ]
    missing = [f for f in shipped if f'mixmae_mm/.mim/{f}' not in names]
    assert not missing, f'not in the wheel: {missing}'
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    info = f'mixmae_mm-{version}.dist-info'
    assert f'{info}/licenses/LICENSE' in names
    with zipfile.ZipFile(wheel) as z:
        assert z.read(f'{info}/licenses/LICENSE') == \
            (ROOT / 'LICENSE').read_bytes()
        meta = Parser().parsestr(z.read(f'{info}/METADATA').decode())
    assert meta['Version'] == version
    assert meta['License'] == 'Apache-2.0'
    assert meta['Description-Content-Type'] == 'text/markdown'
    assert meta.get_payload().strip() == (ROOT /
                                          'README.md').read_text().strip()
    assert set(meta.get_all('Provides-Extra')) == {
        'det', 'seg', 'tests', 'tensorboard'
    }
    assert any(
        c.startswith('Programming Language :: Python :: 3.11')
        for c in meta.get_all('Classifier'))
    assert meta.get_all('Project-URL')

    with tarfile.open(sdist) as tar:
        members = {
            m.name.split('/', 1)[1]
            for m in tar.getmembers() if '/' in m.name
        }
    assert {'LICENSE', 'CHANGELOG.md', 'model-index.yml', 'setup.py'} <= \
        members
    assert not [f for f in shipped if f not in members]
    assert not [m for m in members if m.startswith('mixmae_mm/.mim')]

    for name in ('configs', 'tools', 'model-index.yml'):
        assert (ROOT / 'mixmae_mm' / '.mim' / name).is_symlink(), name
