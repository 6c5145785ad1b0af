"""tools/setup_env.sh chooses the stack and the mmcv branch (CPU ops, CUDA
ops built here, OpenMMLab's prebuilt CUDA wheel) from what torch sees; the
dry-run mode prints that plan without installing anything."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools' / 'setup_env.sh'


def plan(probe, **env):
    """Run the dry run with a faked torch probe; returns (rc, plan, log)."""
    full = {k: v for k, v in os.environ.items()
            if k not in ('TORCH_CUDA_ARCH_LIST', 'MIXMAE_MMCV_CUDA',
                         'MIXMAE_STACK', 'MIXMAE_VENV')}
    full.update(MIXMAE_SETUP_DRY_RUN='1', MIXMAE_PROBE=probe,
                MIXMAE_CACHE='/cache', **env)
    res = subprocess.run(['bash', str(SCRIPT)], env=full,
                         capture_output=True, text=True, timeout=60)
    lines = dict(line.split('=', 1) for line in res.stdout.splitlines())
    return res.returncode, lines, res.stderr


def test_cpu_machine_builds_cpu_ops_with_cxx20_patch_on_torch_2_14():
    rc, p, _ = plan('torch=2.14.1 cuda=13.0 caps=none')
    assert rc == 0
    assert p['mmcv_branch'] == 'cpu'
    assert p['cxx20_patch'] == '1'
    assert p['stack'] == 'torch2.14' and p['venv'] == str(ROOT / '.venv')
    # the key of the CPU wheel carries no CUDA part (and matches the cache
    # that earlier set-ups wrote)
    assert p['wheel_dir'] == '/cache/wheels/torch-2.14.1-cp311-x86_64'


def test_gpu_machine_builds_cuda_ops_for_the_visible_archs():
    rc, p, _ = plan('torch=2.14.1 cuda=13.0 caps=8.0,9.0')
    assert rc == 0
    assert p['mmcv_branch'] == 'cuda-build'
    assert p['arch_list'] == '8.0;9.0'
    assert p['wheel_dir'].endswith('torch-2.14.1-cp311-x86_64-cu130-sm80-90')
    # nvcc pieces pinned to torch's CUDA minor version
    assert all(spec.endswith('==13.0.*') for spec in p['nvcc'].split())
    assert 'nvidia-cuda-nvcc==13.0.*' in p['nvcc'].split()


def test_arch_list_override_and_forced_cuda_without_gpu():
    rc, p, _ = plan('torch=2.14.1 cuda=13.0 caps=none', MIXMAE_MMCV_CUDA='1',
                    TORCH_CUDA_ARCH_LIST='9.0')
    assert rc == 0 and p['mmcv_branch'] == 'cuda-build'
    assert p['wheel_dir'].endswith('-cu130-sm90')
    rc, p, _ = plan('torch=2.14.1 cuda=13.0 caps=8.0',
                    TORCH_CUDA_ARCH_LIST='9.0')
    assert p['arch_list'] == '9.0'


def test_forced_cuda_without_gpu_or_arch_list_is_refused():
    rc, _, err = plan('torch=2.14.1 cuda=13.0 caps=none', MIXMAE_MMCV_CUDA='1')
    assert rc != 0
    assert 'TORCH_CUDA_ARCH_LIST' in err


def test_cpu_only_torch_cannot_get_cuda_ops():
    rc, _, err = plan('torch=2.14.1 cuda=none caps=none', MIXMAE_MMCV_CUDA='1',
                      TORCH_CUDA_ARCH_LIST='9.0')
    assert rc != 0 and 'CPU-only build' in err


def test_torch_2_1_on_a_gpu_takes_openmmlabs_prebuilt_wheel():
    rc, p, _ = plan('torch=2.1.2 cuda=12.1 caps=8.0', MIXMAE_STACK='torch2.1')
    assert rc == 0
    assert p['mmcv_branch'] == 'cuda-prebuilt'
    assert p['cxx20_patch'] == '0'
    assert p['mmcv_index'] == ('https://download.openmmlab.com/mmcv/dist/'
                               'cu121/torch2.1/index.html')
    assert p['venv'] == str(ROOT / '.venv-torch2.1')
    assert p['stack_file'] == 'requirements/stacks/torch2.1.txt'


def test_torch_2_1_on_cpu_builds_without_the_cxx20_patch():
    rc, p, _ = plan('torch=2.1.2 cuda=12.1 caps=none', MIXMAE_STACK='torch2.1')
    assert rc == 0 and p['mmcv_branch'] == 'cpu' and p['cxx20_patch'] == '0'


def test_gpu_opt_out_warns():
    rc, p, err = plan('torch=2.14.1 cuda=13.0 caps=9.0', MIXMAE_MMCV_CUDA='0')
    assert rc == 0 and p['mmcv_branch'] == 'cpu'
    assert 'RoIAlign' in err


def test_missing_nvcc_for_cuda_12_names_the_alternatives():
    env = dict(PATH='/usr/bin:/bin')  # no nvcc on PATH
    rc, _, err = plan('torch=2.5.1 cuda=12.4 caps=9.0', **env)
    assert rc != 0
    assert 'nvcc 12.4' in err and 'MIXMAE_STACK=torch2.1' in err


@pytest.mark.parametrize('env,needle', [
    (dict(MIXMAE_STACK='torch9'), "unknown MIXMAE_STACK 'torch9'"),
    (dict(MIXMAE_MMCV_CUDA='yes'), 'MIXMAE_MMCV_CUDA must be auto, 0 or 1'),
])
def test_bad_settings_are_refused(env, needle):
    rc, _, err = plan('torch=2.14.1 cuda=13.0 caps=none', **env)
    assert rc != 0 and needle in err
