"""tools/check_env.py: reported versions equal the installed ones, mmcv's
ops / CUDA-kernel detection is right on the installed (CPU-only) mmcv and
on fake files, the status logic gives the documented advice, and the exit
code follows pretraining readiness."""
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mixmae_mm.utils import check_env as ce

ROOT = Path(__file__).resolve().parents[2]
TOOL = 'tools/check_env.py'


def _run(*args, env=None):
    env = dict(os.environ if env is None else env)
    return subprocess.run([sys.executable, *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


@pytest.fixture(scope='module')
def reported():
    """The JSON report of this interpreter's environment, and the
    process's return code."""
    proc = _run(TOOL, '--json')
    assert proc.stdout.lstrip().startswith('{'), proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.returncode


# ------------------------------------------------------------ real report
def test_versions_match_installed(reported):
    import mmcv
    import mmdet
    import mmengine
    import mmpretrain
    import mmseg
    import numpy
    import torch
    import torchvision

    import mixmae_mm
    rep, _ = reported
    oracle = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torch_cuda': torch.version.cuda,
        'torchvision': torchvision.__version__,
        'numpy': numpy.__version__,
        'mmengine': mmengine.__version__,
        'mmcv': mmcv.__version__,
        'mmpretrain': mmpretrain.__version__,
        'mmdet': mmdet.__version__,
        'mmsegmentation': mmseg.__version__,
        'mixmae_mm': mixmae_mm.__version__,
    }
    assert {k: rep['versions'][k] for k in oracle} == oracle
    assert rep['cuda']['available'] == torch.cuda.is_available()
    assert rep['cuda']['torch_cuda'] == torch.version.cuda
    assert rep['executable'] == sys.executable
    assert rep['support'] == json.loads(json.dumps(ce.SUPPORT))


def test_exit_code_zero_and_ready(reported):
    rep, returncode = reported
    # this test environment is the verified stack: everything is usable
    assert returncode == 0 == rep['exit_code']
    assert rep['ready'] == dict(
        pretraining=True, detection=True, segmentation=True)
    blocking = [c for c in rep['checks'] if c['status'] in ce.BLOCKING]
    assert blocking == []


def _readelf_has_fatbin(path):
    """Independent oracle: the section table lists nvcc's fat binary."""
    out = subprocess.run(['readelf', '-S', '-W', path],
                         capture_output=True,
                         text=True).stdout
    return '.nv_fatbin' in out


def test_mmcv_ops_and_cuda_kernels_of_installed_mmcv(reported):
    import mmcv._ext
    import mmcv.ops  # noqa: F401
    rep, _ = reported
    info = rep['mmcv']
    assert info['flavor'] == 'mmcv'
    assert info['ops'] is True and info['ops_error'] is None
    assert info['ext_file'] == mmcv._ext.__file__
    if shutil.which('readelf'):
        expected = _readelf_has_fatbin(mmcv._ext.__file__)
    else:  # the test environment's mmcv is built CPU-only (FORCE_CUDA=0)
        expected = False
    assert info['cuda_kernels'] is expected
    assert info['kernel_evidence']['has_cuda_kernels'] is expected
    if not expected:
        assert info['kernel_evidence']['symbols'] == []
        assert info['kernel_evidence']['sections'] == []
        text = _run(TOOL).stdout
        assert 'CUDA kernels: no CUDA kernels' in text
    # the same answer without binutils (byte search)
    assert ce.detect_cuda_kernels(
        mmcv._ext.__file__, use_nm=False)['has_cuda_kernels'] is expected


def test_ops_smoke_test_runs_on_cpu():
    # the GPU check's calls are valid: the same ones pass on the CPU ops
    import mmcv.ops
    assert ce.ops_smoke_test(mmcv.ops, 'cpu') is None


def test_text_report(reported):
    rep, _ = reported
    proc = _run(TOOL)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    out = proc.stdout
    for name in ('torch', 'mmcv', 'mmdet', 'mmsegmentation'):
        assert f'{name:<16}{rep["versions"][name]}' in out
    assert 'ready for: pretraining yes, detection yes, segmentation yes' \
        in out
    assert 'OK          mmengine: 0.10' in out


def test_module_form_reports_the_same(reported):
    rep, _ = reported
    proc = _run('-m', 'mixmae_mm.utils.check_env', '--json')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)['versions'] == rep['versions']


def test_exit_code_one_when_mmpretrain_is_broken(tmp_path):
    # a package shadowing mmpretrain that fails to import: the tool still
    # runs, names the failure and exits 1
    fake = tmp_path / 'mmpretrain'
    fake.mkdir()
    (fake / '__init__.py').write_text("raise ImportError('broken on purpose')")
    env = dict(os.environ, PYTHONPATH=f'{tmp_path}{os.pathsep}{ROOT}')
    proc = _run(TOOL, '--json', env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    assert rep['exit_code'] == 1
    assert 'broken on purpose' in rep['import_errors']['mmpretrain']
    (check, ) = [c for c in rep['checks'] if c['name'] == 'mmpretrain']
    assert check['status'] == ce.UNSUPPORTED
    assert 'broken on purpose' in check['message']
    text = _run(TOOL, env=env)
    assert text.returncode == 1
    assert 'ready for: pretraining NO' in text.stdout


# ------------------------------------------------------------ detector
def _write(path, *chunks):
    path.write_bytes(b''.join(chunks))
    return str(path)


@pytest.mark.parametrize('use_nm', [False, True])
def test_detector_on_fake_files(tmp_path, use_nm):
    # not ELF: with use_nm, nm fails and the byte search answers
    noise = bytes(range(256)) * 64
    with_kernel = _write(tmp_path / 'cuda.so', b'\x7fELF', noise,
                         b'_Z29roi_align_forward_cuda_kernelIfEviPKT_S2_\x00',
                         noise)
    res = ce.detect_cuda_kernels(with_kernel, use_nm=use_nm)
    assert res['method'] == 'bytes'
    assert res['symbols'] == ['roi_align_forward_cuda_kernel']
    assert res['has_cuda_kernels'] is True

    cpu_only = _write(tmp_path / 'cpu.so', b'\x7fELF', noise,
                      b'_Z28roi_align_forward_cpu_implv\x00nms_cpu\x00', noise)
    res = ce.detect_cuda_kernels(cpu_only, use_nm=use_nm)
    assert res['symbols'] == [] and res['sections'] == []
    assert res['has_cuda_kernels'] is False

    fatbin_only = _write(tmp_path / 'fatbin.so', noise, b'\x00.nv_fatbin\x00')
    res = ce.detect_cuda_kernels(fatbin_only, use_nm=use_nm)
    assert res['sections'] == ['.nv_fatbin']
    assert res['has_cuda_kernels'] is True


def test_detector_finds_names_across_read_chunks(tmp_path):
    # the name straddles the 4 MiB read boundary
    name = b'NMSCUDAKernelLauncher'
    path = _write(tmp_path / 'big.so', b'\x00' * ((1 << 22) - 7), name,
                  b'\x00' * 100)
    assert ce._scan_bytes(path,
                          ce.CUDA_KERNEL_SYMBOLS) == ['NMSCUDAKernelLauncher']


@pytest.mark.skipif(
    not (shutil.which('cc') and shutil.which('nm')),
    reason='needs a C compiler and binutils')
def test_detector_reads_dynamic_symbols_with_nm(tmp_path):

    def shared_lib(name, source):
        src = tmp_path / f'{name}.c'
        src.write_text(source)
        lib = tmp_path / f'{name}.so'
        subprocess.run(
            ['cc', '-shared', '-fPIC', '-o',
             str(lib), str(src)], check=True)
        return str(lib)

    cuda = shared_lib(
        'cuda', 'int nms_cuda(int x) { return x; }\n'
        'int nms_cpu(int x) { return x; }\n')
    res = ce.detect_cuda_kernels(cuda)
    assert res['method'] == 'nm'
    assert res['symbols'] == ['nms_cuda']
    assert res['cuda_symbol_count'] == 1
    assert res['has_cuda_kernels'] is True

    cpu = shared_lib('cpu', 'int nms_cpu(int x) { return x; }\n')
    res = ce.detect_cuda_kernels(cpu)
    assert res['method'] == 'nm'
    assert res['has_cuda_kernels'] is False


# ------------------------------------------------------------ status logic
GOOD = dict(
    versions=dict(
        python='3.11.7',
        torch='2.14.1+cu130',
        torch_cuda='13.0',
        torchvision='0.29.1',
        numpy='1.26.4',
        mmengine='0.10.7',
        mmcv='2.1.0',
        mmpretrain='1.2.0',
        mmdet='3.3.0',
        mmsegmentation='1.2.2',
        mixmae_mm='0.1.0'),
    import_errors={},
    mixmae_mm_importable=True,
    mmcv=dict(flavor='mmcv', ops=True, cuda_kernels=False),
    cuda=dict(torch_cuda='13.0', available=False, devices=[]))


def _info(**versions):
    info = copy.deepcopy(GOOD)
    info['versions'].update(versions)
    return info


def _by_name(checks):
    return {c['name']: c for c in checks}


def _ready(info):
    return ce.readiness(ce.evaluate(info))


def test_status_verified_stack():
    checks = ce.evaluate(_info())
    by_name = _by_name(checks)
    for name in ('python', 'torch', 'torchvision', 'numpy', 'mmengine', 'mmcv',
                 'mmcv ops', 'mmpretrain', 'mmdet', 'mmsegmentation',
                 'mixmae_mm'):
        assert by_name[name]['status'] == ce.OK, by_name[name]
    assert 'verified' in by_name['torch']['message']
    assert 'no CUDA kernels' in by_name['mmcv ops']['message']
    # no GPU here: a warning, not a failure
    assert by_name['cuda']['status'] == ce.WARN
    assert ce.exit_code(checks) == 0
    assert all(_ready(_info()).values())


def test_status_mmcv_lite():
    info = _info()
    info['mmcv'] = dict(
        flavor='mmcv-lite',
        ops=False,
        ops_error="ModuleNotFoundError: No module named 'mmcv._ext'")
    checks = ce.evaluate(info)
    ops = _by_name(checks)['mmcv ops']
    assert ops['status'] == ce.WARN
    assert 'enough for pretraining' in ops['message']
    assert 'mim install mmcv==2.1.0' in ops['fix']
    assert 'torch <= 2.1' in ops['fix']
    assert 'tools/setup_env.sh' in ops['fix']
    assert _by_name(checks)['mmcv']['status'] == ce.OK
    assert ce.readiness(checks) == dict(
        pretraining=True, detection=False, segmentation=False)
    assert ce.exit_code(checks) == 0


def test_status_numpy2_with_old_torch():
    info = _info(torch='2.1.2+cu121', torchvision='0.16.2', numpy='2.1.3')
    checks = ce.evaluate(info)
    numpy_check = _by_name(checks)['numpy']
    assert numpy_check['status'] == ce.UNSUPPORTED
    assert 'numpy<2' in numpy_check['fix']
    assert _by_name(checks)['torch']['status'] == ce.OK
    assert ce.exit_code(checks) == 1
    # numpy 2 is fine from torch 2.3 on
    checks = ce.evaluate(_info(numpy='2.1.3'))
    assert _by_name(checks)['numpy']['status'] == ce.OK
    assert ce.exit_code(checks) == 0


@pytest.mark.parametrize('torch_v, tv, status, code', [
    ('2.0.1', '0.15.2', ce.UNSUPPORTED, 1),
    ('1.13.1', '0.14.1', ce.UNSUPPORTED, 1),
    ('2.1.2', '0.16.2', ce.OK, 0),
    ('2.15.0', '0.30.0', ce.OK, 0),
    ('2.16.0', '0.31.0', ce.WARN, 0),
])
def test_status_torch_range(torch_v, tv, status, code):
    checks = ce.evaluate(_info(torch=torch_v, torchvision=tv))
    check = _by_name(checks)['torch']
    assert check['status'] == status, check
    assert ce.exit_code(checks) == code
    if status == ce.UNSUPPORTED:
        assert '2.1-2.15' in check['fix']
    if torch_v == '2.15.0':
        assert 'one pretraining iteration' in check['message']


def test_status_torchvision_pairing():
    checks = ce.evaluate(_info(torchvision='0.16.2'))
    assert _by_name(checks)['torchvision']['status'] == ce.WARN
    assert '0.29' in _by_name(checks)['torchvision']['fix']
    checks = ce.evaluate(_info(torchvision=None))
    assert _by_name(checks)['torchvision']['status'] == ce.MISSING
    assert ce.exit_code(checks) == 1


def test_status_missing_mmdet_warns_for_detection_only():
    checks = ce.evaluate(_info(mmdet=None))
    mmdet = _by_name(checks)['mmdet']
    assert mmdet['status'] == ce.WARN
    assert mmdet['needed_for'] == ['detection']
    assert 'mmdet==3.3.0' in mmdet['fix']
    assert ce.readiness(checks) == dict(
        pretraining=True, detection=False, segmentation=True)
    assert ce.exit_code(checks) == 0
    checks = ce.evaluate(_info(mmsegmentation=None))
    assert ce.readiness(checks) == dict(
        pretraining=True, detection=True, segmentation=False)


@pytest.mark.parametrize('name', ['mmengine', 'mmcv', 'mmpretrain', 'torch'])
def test_status_missing_pretraining_piece(name):
    checks = ce.evaluate(_info(**{name: None}))
    assert _by_name(checks)[name]['status'] == ce.MISSING
    assert ce.exit_code(checks) == 1
    assert not any(ce.readiness(checks).values())


def test_status_mmcv_too_new_for_mmdet_mmseg():
    checks = ce.evaluate(_info(mmcv='2.2.0'))
    mmcv = _by_name(checks)['mmcv']
    assert mmcv['status'] == ce.UNSUPPORTED
    assert 'mmdet 3.3' in mmcv['message']
    assert ce.readiness(checks) == dict(
        pretraining=True, detection=False, segmentation=False)
    assert ce.exit_code(checks) == 0
    checks = ce.evaluate(_info(mmengine='0.9.1'))
    assert _by_name(checks)['mmengine']['status'] == ce.UNSUPPORTED
    assert ce.exit_code(checks) == 1


def test_status_cpu_kernels_with_visible_gpu():
    info = _info()
    info['cuda'] = dict(
        torch_cuda='13.0',
        available=True,
        devices=[dict(name='NVIDIA H200', capability='9.0')],
        arch_list=['sm_80', 'sm_90'])
    checks = ce.evaluate(info)
    ops = _by_name(checks)['mmcv ops']
    assert ops['status'] == ce.WARN
    assert "RoIAlign/NMS will fail on the GPU" in ops['message']
    assert 'FORCE_CUDA=1' in ops['fix']
    assert _by_name(checks)['cuda']['status'] == ce.OK
    assert ce.readiness(checks) == dict(
        pretraining=True, detection=False, segmentation=True)
    # CUDA kernels that run: all ready
    info['mmcv'] = dict(
        flavor='mmcv', ops=True, cuda_kernels=True, gpu_ops_checked=True)
    assert all(_ready(info).values())
    info['mmcv']['gpu_ops_error'] = 'RuntimeError: no kernel image'
    assert not _ready(info)['detection']


def test_status_ops_built_against_another_torch():
    info = _info()
    info['mmcv'] = dict(
        flavor='mmcv',
        ops=False,
        ops_error='ImportError: _ext.so: undefined symbol: _ZN3c10x')
    ops = _by_name(ce.evaluate(info))['mmcv ops']
    assert ops['status'] == ce.UNSUPPORTED
    assert 'another torch' in ops['fix']
    assert _ready(info) == dict(
        pretraining=True, detection=False, segmentation=False)


def test_status_python_and_mixmae_importable():
    checks = ce.evaluate(_info(python='3.9.18'))
    assert _by_name(checks)['python']['status'] == ce.UNSUPPORTED
    assert ce.exit_code(checks) == 1
    info = _info()
    info['mixmae_mm_importable'] = False
    check = _by_name(ce.evaluate(info))['mixmae_mm']
    assert check['status'] == ce.MISSING
    assert 'pip install -e .' in check['fix']


def test_release_parsing():
    assert ce.release('2.14.1+cu130') == (2, 14, 1)
    assert ce.release('2.0.0rc4') == (2, 0, 0)
    assert ce.release('2.6.0.dev20240101') == (2, 6, 0)
    assert ce.release(None) == ()
