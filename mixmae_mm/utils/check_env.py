# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Check an OpenMMLab environment for mixmae_mm and say what to fix.

Users install this package into an environment they already have; the
usual failures are a torch outside the tested range, numpy 2 under an old
torch, mmcv-lite (or an mmcv without CUDA kernels) where detection needs
compiled ops, and an mmcv too new for mmdet / mmseg. This module reports
each piece with a status (OK / MISSING / UNSUPPORTED / WARN) and a fix.

Run it as ``python tools/check_env.py [--json]`` (works even when mmcv or
mmpretrain are missing) or ``python -m mixmae_mm.utils.check_env``
(imports the ``mixmae_mm`` package first, so it needs mmpretrain). The exit
code is 0 when everything pretraining needs is usable, 1 otherwise.

Deliberately imports only the standard library at module level: every
OpenMMLab piece is imported inside ``try`` so that a broken or missing one
becomes a line of the report instead of a traceback.
"""
import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

# ---------------------------------------------------------------- support
#: The support matrix, the one place that states it. Ranges are on the
#: release number (local tags such as ``+cu130`` ignored); ``max`` is
#: inclusive on major.minor.
# yapf: disable
SUPPORT = {
    'python': dict(min='3.10', verified=['3.11.7']),
    'torch': dict(
        min='2.1',
        max='2.15',
        verified=['2.1.2', '2.14.1'],
        partial={
            '2.15.0': 'import, one pretraining iteration and the transfer '
            'hand-off'
        }),
    # torchvision 0.(M + 15) pairs with torch 2.M (0.16 / 2.1, 0.29 / 2.14)
    'torchvision': dict(minor_offset=15, verified=['0.16.2', '0.29.1']),
    # torch < 2.3 was built against numpy 1 ("Failed to initialize NumPy")
    'numpy': dict(
        max_major_before_torch={'2.3': 1}, verified=['1.26.4']),
    'mmengine': dict(series='0.10', verified=['0.10.7']),
    # mmdet 3.3 / mmseg 1.2 refuse mmcv >= 2.2; mmpretrain 1.2 takes < 2.4
    'mmcv': dict(
        verified=['2.1.0'],
        pretrain_range=('2.0.0', '2.4.0'),
        dense_range=('2.0.0', '2.2.0')),
    'mmpretrain': dict(series='1.2', verified=['1.2.0']),
    'mmdet': dict(series='3.3', verified=['3.3.0']),
    'mmsegmentation': dict(series='1.2', verified=['1.2.2']),
}
# yapf: enable

#: Distribution name -> import name of the pieces whose version is shown.
PACKAGES = {
    'torch': 'torch',
    'torchvision': 'torchvision',
    'numpy': 'numpy',
    'mmengine': 'mmengine',
    'mmcv': 'mmcv',
    'mmpretrain': 'mmpretrain',
    'mmdet': 'mmdet',
    'mmsegmentation': 'mmseg',
}

#: What each task needs; the exit code follows ``pretraining``.
TASKS = ('pretraining', 'detection', 'segmentation')
DENSE = ('detection', 'segmentation')

#: Names that only a CUDA build of mmcv's ``_ext`` contains: kernel
#: templates and the host launchers registered for the CUDA device.
CUDA_KERNEL_SYMBOLS = ('roi_align_forward_cuda_kernel', 'nms_cuda',
                       'NMSCUDAKernelLauncher')
#: mmcv's naming of CUDA code (``*_cuda_kernel``, ``*CUDAKernelLauncher``,
#: device implementations ``*_cuda``), for the count of CUDA symbols.
CUDA_NAME_RE = re.compile(r'_cuda_kernel|CUDAKernelLauncher|_cuda\b')
#: ELF sections nvcc adds for the embedded device code (fat binaries).
CUDA_SECTIONS = ('.nv_fatbin', '.nvFatBinSegment', '__nv_relfatbin')

FULL_MMCV_FIX = ('detection/segmentation need full mmcv 2.1.0 with ops: '
                 'mim install mmcv==2.1.0 (prebuilt CUDA wheels exist for '
                 'torch <= 2.1) or bash tools/setup_env.sh')
TORCH_FIX = ('install a torch in 2.1-2.15 with its torchvision, e.g. '
             'pip install torch==2.14.1 torchvision==0.29.1 (verified), or '
             "torch==2.1.2 torchvision==0.16.2 'numpy<2' (the torch of "
             "OpenMMLab's prebuilt CUDA mmcv wheels)")

OK, MISSING, UNSUPPORTED, WARN = 'OK', 'MISSING', 'UNSUPPORTED', 'WARN'
#: Statuses that make a piece unusable for the tasks that need it.
BLOCKING = (MISSING, UNSUPPORTED)


def release(version: Optional[str]) -> Tuple[int, ...]:
    """The numeric release of a version string: ``'2.14.1+cu130'`` ->
    ``(2, 14, 1)``, ``'2.0.0rc4'`` -> ``(2, 0, 0)``. Kept here instead of
    ``packaging`` so that the check has no third-party dependency."""
    match = re.match(r'\d+(?:\.\d+)*', version or '')
    if not match:
        return ()
    return tuple(int(p) for p in match.group(0).split('.'))


def _in_range(version: str, low: str, high: str) -> bool:
    """``low <= version < high`` on release numbers."""
    return release(low) <= release(version) < release(high)


# ---------------------------------------------------------------- collect
def _dist_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _short_error(exc: BaseException) -> str:
    text = f'{type(exc).__name__}: {exc}'.strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _import_versions() -> Tuple[Dict, Dict]:
    """Import each package; its ``__version__`` (or the installed
    distribution's when the import fails) and the import error."""
    versions, errors = {}, {}
    for dist, module in PACKAGES.items():
        try:
            mod = importlib.import_module(module)
            versions[dist] = str(
                getattr(mod, '__version__', None) or _dist_version(dist))
            errors[dist] = None
        except Exception as exc:  # noqa: BLE001 (any import failure counts)
            versions[dist] = _dist_version(dist)
            if dist == 'mmcv' and versions[dist] is None:
                versions[dist] = _dist_version('mmcv-lite')
            errors[dist] = (None if versions[dist] is None
                            and isinstance(exc, ModuleNotFoundError)
                            and exc.name == module else _short_error(exc))
    return versions, errors


def _mixmae_version() -> Tuple[Optional[str], bool]:
    """The version of this source tree (read from ``version.py`` by path,
    as importing the package would import mmpretrain) and whether
    ``import mixmae_mm`` would find a package (spec lookup only)."""
    version = None
    version_file = Path(__file__).resolve().parents[1] / 'version.py'
    try:
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]",
                          version_file.read_text())
        version = match.group(1) if match else None
    except OSError:
        version = _dist_version('mixmae_mm')
    try:
        importable = importlib.util.find_spec('mixmae_mm') is not None
    except (ImportError, ValueError):
        importable = False
    return version, importable


def _scan_bytes(path: str, needles: Sequence[str]) -> List[str]:
    """The ``needles`` that occur in the file, read in overlapping chunks
    (works without binutils; mangled C++ names contain the plain name)."""
    wanted = {n: n.encode() for n in needles}
    found = set()
    overlap = max(len(b) for b in wanted.values())
    tail = b''
    with open(path, 'rb') as f:
        while len(found) < len(wanted):
            chunk = f.read(1 << 22)
            if not chunk:
                break
            buf = tail + chunk
            for name, needle in wanted.items():
                if name not in found and needle in buf:
                    found.add(name)
            tail = buf[-overlap:]
    return [n for n in needles if n in found]


def detect_cuda_kernels(path: str, use_nm: bool = True) -> Dict:
    """Whether a compiled extension holds CUDA kernels, without a GPU.

    Looks for CUDA-only symbol names in the dynamic symbols (``nm -D -C``
    when binutils are installed, else a byte search of the file) and for
    the sections nvcc embeds device code in. A CPU-only mmcv build has
    neither, so its RoIAlign / NMS fail on CUDA tensors.
    """
    result = dict(
        file=path, method=None, symbols=[], sections=[], cuda_symbol_count=0)
    nm = shutil.which('nm') if use_nm else None
    if nm:
        try:
            proc = subprocess.run([nm, '-D', '-C', '--defined-only', path],
                                  capture_output=True,
                                  text=True,
                                  timeout=120)
            if proc.returncode == 0 and proc.stdout:
                lines = proc.stdout.splitlines()
                result['method'] = 'nm'
                result['symbols'] = [
                    s for s in CUDA_KERNEL_SYMBOLS
                    if any(s in ln for ln in lines)
                ]
                result['cuda_symbol_count'] = sum(
                    bool(CUDA_NAME_RE.search(ln)) for ln in lines)
        except (OSError, subprocess.SubprocessError):
            pass
    if result['method'] is None:
        result['method'] = 'bytes'
        result['symbols'] = _scan_bytes(path, CUDA_KERNEL_SYMBOLS)
    result['sections'] = _scan_bytes(path, CUDA_SECTIONS)
    result['has_cuda_kernels'] = bool(result['symbols'] or result['sections'])
    return result


def ops_smoke_test(ops, device: str = 'cuda') -> Optional[str]:
    """Run mmcv's NMS and RoIAlign (what Mask R-CNN needs) on ``device``;
    None when they work, else the error (a CPU-only build or a GPU arch
    missing from the build fails here)."""
    import torch
    try:
        boxes = torch.tensor(
            [[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]],
            device=device)
        scores = torch.tensor([0.9, 0.8, 0.7], device=device)
        _, keep = ops.nms(boxes, scores, 0.5)
        if keep.tolist() != [0, 2]:
            return f'nms kept {keep.tolist()}, expected [0, 2]'
        feat = torch.arange(16., device=device).view(1, 1, 4, 4)
        rois = torch.tensor([[0., 0., 0., 3., 3.]], device=device)
        out = ops.roi_align(feat, rois, (2, 2), 1.0, 0, 'avg', True)
        if device == 'cuda':
            torch.cuda.synchronize()
        if tuple(out.shape) != (1, 1, 2, 2) or not torch.isfinite(out).all():
            return f'roi_align returned shape {tuple(out.shape)}'
    except Exception as exc:  # noqa: BLE001
        return _short_error(exc)
    return None


def _collect_mmcv(cuda_available: bool) -> Dict:
    info = dict(
        flavor=None,
        ops=False,
        ops_error=None,
        ext_file=None,
        cuda_kernels=None,
        kernel_evidence=None,
        gpu_ops_error=None,
        gpu_ops_checked=False)
    full, lite = _dist_version('mmcv'), _dist_version('mmcv-lite')
    info['flavor'] = ('both' if full and lite else
                      'mmcv-lite' if lite else 'mmcv' if full else None)
    if importlib.util.find_spec('mmcv') is None:
        return info
    if info['flavor'] is None:
        info['flavor'] = 'mmcv'  # a source tree without metadata
    try:
        ext = importlib.import_module('mmcv._ext')
        info['ext_file'] = getattr(ext, '__file__', None)
    except Exception as exc:  # noqa: BLE001
        info['ops_error'] = _short_error(exc)
    if info['ext_file']:
        try:
            info['kernel_evidence'] = detect_cuda_kernels(info['ext_file'])
            info['cuda_kernels'] = info['kernel_evidence']['has_cuda_kernels']
        except OSError as exc:
            info['kernel_evidence'] = dict(error=_short_error(exc))
    if info['ops_error'] is None:
        try:
            ops = importlib.import_module('mmcv.ops')
            info['ops'] = True
        except Exception as exc:  # noqa: BLE001
            info['ops_error'] = _short_error(exc)
    if info['ops'] and cuda_available:
        info['gpu_ops_checked'] = True
        info['gpu_ops_error'] = ops_smoke_test(ops, 'cuda')
    return info


def _collect_cuda() -> Dict:
    info = dict(
        torch_cuda=None, available=False, devices=[], arch_list=[], error=None)
    try:
        import torch
    except Exception:  # noqa: BLE001
        return info
    info['torch_cuda'] = torch.version.cuda
    try:
        info['available'] = bool(torch.cuda.is_available())
        if info['available']:
            info['arch_list'] = list(torch.cuda.get_arch_list())
            for i in range(torch.cuda.device_count()):
                major, minor = torch.cuda.get_device_capability(i)
                info['devices'].append(
                    dict(
                        name=torch.cuda.get_device_name(i),
                        capability=f'{major}.{minor}'))
            torch.ones(2, device='cuda').sum().item()  # a kernel runs
    except Exception as exc:  # noqa: BLE001
        info['error'] = _short_error(exc)
    return info


def collect() -> Dict:
    """Everything the report shows, as plain JSON-able data."""
    versions, errors = _import_versions()
    versions = dict(python=platform.python_version(), **versions)
    versions['mixmae_mm'], importable = _mixmae_version()
    cuda = _collect_cuda()
    versions['torch_cuda'] = cuda['torch_cuda']
    return dict(
        versions=versions,
        import_errors=errors,
        mixmae_mm_importable=importable,
        mmcv=_collect_mmcv(cuda['available'] and cuda['error'] is None),
        cuda=cuda,
        executable=sys.executable)


# ---------------------------------------------------------------- evaluate
def _check(name, status, message, needed_for, fix=None, blocks=None) -> Dict:
    """One status line. ``needed_for``: the tasks the piece matters to;
    ``blocks``: the tasks this finding makes impossible (by default all of
    ``needed_for`` when MISSING / UNSUPPORTED, none otherwise; a WARN that
    blocks only detection or segmentation says so explicitly)."""
    if blocks is None:
        blocks = needed_for if status in BLOCKING else ()
    return dict(
        name=name,
        status=status,
        message=message,
        fix=fix,
        needed_for=list(needed_for),
        blocks=list(blocks))


def _series_check(name: str, version: Optional[str], error: Optional[str],
                  needed_for: Sequence[str], missing_status: str,
                  install: str) -> Dict:
    """A package pinned to one major.minor series (mmengine, mmpretrain,
    mmdet, mmsegmentation)."""
    spec = SUPPORT[name]
    if version is None:
        return _check(
            name,
            missing_status,
            'not installed',
            needed_for,
            install,
            blocks=needed_for)
    if release(version)[:2] != release(spec['series']):
        return _check(
            name, UNSUPPORTED,
            f'{version} is outside the supported {spec["series"]}.x '
            f'(verified {", ".join(spec["verified"])})', needed_for, install)
    if error:
        return _check(name, UNSUPPORTED, f'{version} fails to import: '
                      f'{error}', needed_for, install)
    status = OK
    note = 'verified' if version in spec['verified'] else (
        f'supported series (verified {", ".join(spec["verified"])})')
    return _check(name, status, f'{version} ({note})', needed_for)


def _torch_checks(v: Dict, err: Dict, cuda: Dict) -> List[Dict]:
    checks = []
    spec = SUPPORT['torch']
    torch_v = v.get('torch')
    if torch_v is None:
        return [_check('torch', MISSING, 'not installed', TASKS, TORCH_FIX)]
    rel = release(torch_v)[:2]
    base = '.'.join(map(str, release(torch_v)))
    if err.get('torch'):
        checks.append(
            _check('torch', UNSUPPORTED, f'{torch_v} fails to import: '
                   f'{err["torch"]}', TASKS, TORCH_FIX))
    elif rel < release(spec['min']):
        checks.append(
            _check(
                'torch', UNSUPPORTED,
                f'{torch_v} is older than the supported {spec["min"]}-'
                f'{spec["max"]}', TASKS, TORCH_FIX))
    elif rel > release(spec['max']):
        checks.append(
            _check(
                'torch', WARN,
                f'{torch_v} is newer than the tested {spec["min"]}-'
                f'{spec["max"]}: may work, untested', TASKS,
                'if something breaks, ' + TORCH_FIX))
    else:
        if base in spec['verified']:
            note = 'verified with the full test suite'
        elif base in spec['partial']:
            note = f'in range; checked for {spec["partial"][base]} only'
        else:
            note = (f'in the supported {spec["min"]}-{spec["max"]} '
                    f'(verified {", ".join(spec["verified"])})')
        checks.append(_check('torch', OK, f'{torch_v} ({note})', TASKS))

    tv = v.get('torchvision')
    tv_fix = (f'install the torchvision paired with torch {torch_v}: '
              f'0.{rel[1] + SUPPORT["torchvision"]["minor_offset"]}.x'
              if len(rel) == 2 else 'install the torchvision of your torch')
    if tv is None:
        checks.append(
            _check('torchvision', MISSING,
                   'not installed (mmpretrain.models imports it)', TASKS,
                   tv_fix))
    elif err.get('torchvision'):
        checks.append(
            _check('torchvision', UNSUPPORTED,
                   f'{tv} fails to import: {err["torchvision"]}', TASKS,
                   tv_fix))
    elif len(rel) == 2 and release(tv)[:2] != (
            0, rel[1] + SUPPORT['torchvision']['minor_offset']):
        checks.append(
            _check('torchvision', WARN,
                   f'{tv} is not the release paired with torch {torch_v}',
                   TASKS, tv_fix))
    else:
        checks.append(_check('torchvision', OK, tv, TASKS))

    np_v = v.get('numpy')
    if np_v is None:
        checks.append(
            _check('numpy', MISSING, 'not installed', TASKS,
                   "pip install 'numpy<2'"))
    else:
        limits = SUPPORT['numpy']['max_major_before_torch']
        too_new = [
            t for t, major in limits.items()
            if rel < release(t) and release(np_v)[:1] > (major, )
        ]
        if too_new:
            checks.append(
                _check(
                    'numpy', UNSUPPORTED,
                    f'numpy {np_v} with torch {torch_v}: torch < '
                    f'{too_new[0]} was built against numpy 1 (conversions '
                    'break)', TASKS,
                    "pin numpy<2: pip install 'numpy<2' (and keep it in "
                    'later installs, which may pull numpy 2 back in)'))
        else:
            verified = ', '.join(SUPPORT['numpy']['verified'])
            checks.append(
                _check('numpy', OK, f'{np_v} (verified {verified})', TASKS))

    if cuda.get('error'):
        checks.append(
            _check(
                'cuda', WARN, f'CUDA is visible but fails: {cuda["error"]}',
                TASKS, 'check the driver supports this torch build (CUDA '
                f'{cuda.get("torch_cuda")})'))
    elif cuda.get('available'):
        names = ', '.join(f'{d["name"]} (sm {d["capability"]})'
                          for d in cuda.get('devices', []))
        arch = cuda.get('arch_list') or []
        unknown = [
            d for d in cuda.get('devices', [])
            if arch and f'sm_{d["capability"].replace(".", "")}' not in arch
            and not any(a.startswith('compute_') for a in arch)
        ]
        if unknown:
            checks.append(
                _check(
                    'cuda', WARN, f'{names}: torch has no kernels for '
                    f'this capability (built for {" ".join(arch)})', TASKS,
                    'install a torch build that lists this GPU arch'))
        else:
            checks.append(_check('cuda', OK, names, TASKS))
    elif cuda.get('torch_cuda'):
        checks.append(
            _check(
                'cuda', WARN, f'no GPU visible (torch is a CUDA '
                f'{cuda["torch_cuda"]} build): runs on the CPU only', TASKS,
                'fine for the demo configs; the paper configs need GPUs'))
    else:
        checks.append(
            _check('cuda', WARN, 'torch is a CPU-only build', TASKS,
                   'install a CUDA build of torch to train on GPUs'))
    return checks


def _mmcv_checks(v: Dict, err: Dict, mmcv: Dict, cuda: Dict) -> List[Dict]:
    checks = []
    spec = SUPPORT['mmcv']
    version = v.get('mmcv')
    flavor = mmcv.get('flavor')
    if version is None:
        checks.append(
            _check(
                'mmcv', MISSING, 'not installed', TASKS,
                'pretraining: pip install mmcv-lite==2.1.0; ' + FULL_MMCV_FIX))
        return checks
    if not _in_range(version, *spec['pretrain_range']):
        checks.append(
            _check(
                'mmcv', UNSUPPORTED, f'{version} is outside mmpretrain '
                f'1.2\'s {spec["pretrain_range"][0]} <= mmcv < '
                f'{spec["pretrain_range"][1]}', TASKS, FULL_MMCV_FIX))
        return checks
    if err.get('mmcv'):
        checks.append(
            _check('mmcv', UNSUPPORTED, f'{version} fails to import: '
                   f'{err["mmcv"]}', TASKS, FULL_MMCV_FIX))
        return checks
    label = dict(both='mmcv and mmcv-lite').get(flavor, flavor)
    if flavor == 'both':
        checks.append(
            _check(
                'mmcv', WARN, f'{version}: both mmcv and mmcv-lite are '
                'installed (they overwrite each other\'s files)', TASKS,
                'pip uninstall mmcv-lite mmcv, then install one'))
    elif not _in_range(version, *spec['dense_range']):
        checks.append(
            _check(
                'mmcv', UNSUPPORTED, f'{version} ({label}): enough for '
                'pretraining; mmdet 3.3 / mmseg 1.2 refuse mmcv >= '
                f'{spec["dense_range"][1]}', DENSE, FULL_MMCV_FIX))
    else:
        verified = ', '.join(spec['verified'])
        note = ('verified'
                if version in spec['verified'] else f'verified {verified}')
        checks.append(
            _check('mmcv', OK, f'{version} ({label}, {note})',
                   ('pretraining', )))

    if flavor == 'mmcv-lite' and not mmcv.get('ops'):
        checks.append(
            _check(
                'mmcv ops',
                WARN,
                'mmcv-lite has no compiled ops: enough for pretraining',
                DENSE,
                FULL_MMCV_FIX,
                blocks=DENSE))
    elif not mmcv.get('ops'):
        error = mmcv.get('ops_error') or 'mmcv.ops does not load'
        undefined = 'undefined symbol' in error
        checks.append(
            _check(
                'mmcv ops',
                UNSUPPORTED if undefined else WARN,
                f'compiled ops do not load: {error}',
                DENSE,
                ('the mmcv wheel was built against another torch: rebuild '
                 'it for this torch (bash tools/setup_env.sh)')
                if undefined else FULL_MMCV_FIX,
                blocks=DENSE))
    else:
        checks.append(_ops_cuda_check(mmcv, cuda))
    return checks


def _ops_cuda_check(mmcv: Dict, cuda: Dict) -> Dict:
    gpu = bool(cuda.get('available')) and not cuda.get('error')
    kernels = mmcv.get('cuda_kernels')
    rebuild = ('rebuild mmcv with FORCE_CUDA=1 (tools/setup_env.sh does '
               'when it sees a GPU)')
    # UperNet needs no mmcv CUDA op; Mask R-CNN's RoIAlign / NMS do
    if mmcv.get('gpu_ops_checked'):
        if mmcv.get('gpu_ops_error'):
            return _check(
                'mmcv ops',
                WARN, 'nms / roi_align on CUDA tensors fail: '
                f'{mmcv["gpu_ops_error"]}',
                DENSE,
                rebuild + ', with TORCH_CUDA_ARCH_LIST covering this GPU',
                blocks=('detection', ))
        return _check(
            'mmcv ops', OK, 'compiled, CUDA kernels: nms and roi_align run on '
            'the GPU', DENSE)
    if kernels is False and gpu:
        return _check(
            'mmcv ops',
            WARN, 'compiled for the CPU only (no CUDA kernels) while a GPU is '
            'visible: Mask R-CNN\'s RoIAlign/NMS will fail on the GPU',
            DENSE,
            rebuild,
            blocks=('detection', ))
    if kernels is False:
        return _check(
            'mmcv ops', OK, 'compiled, CPU only (no CUDA kernels; no GPU '
            'visible)', DENSE, 'on a GPU machine: ' + rebuild)
    if kernels:
        return _check(
            'mmcv ops', OK, 'compiled, with CUDA kernels (not run: no GPU '
            'visible)', DENSE)
    return _check('mmcv ops', OK, 'compiled (CUDA kernels not determined)',
                  DENSE)


def evaluate(info: Dict) -> List[Dict]:
    """The status lines for ``info`` (the shape :func:`collect` returns;
    missing keys read as absent pieces, so tests can pass small dicts)."""
    v = dict(info.get('versions', {}))
    err = dict(info.get('import_errors', {}))
    cuda = dict(info.get('cuda', {}))
    mmcv = dict(info.get('mmcv', {}))
    checks = []

    py = v.get('python') or platform.python_version()
    if release(py)[:2] < release(SUPPORT['python']['min']):
        checks.append(
            _check('python', UNSUPPORTED,
                   f'{py} (mixmae_mm needs >= {SUPPORT["python"]["min"]})',
                   TASKS, 'use Python 3.11 (verified)'))
    else:
        checks.append(_check('python', OK, py, TASKS))

    checks += _torch_checks(v, err, cuda)
    checks.append(
        _series_check('mmengine', v.get('mmengine'), err.get('mmengine'),
                      TASKS, MISSING, 'pip install mmengine==0.10.7'))
    checks += _mmcv_checks(v, err, mmcv, cuda)
    checks.append(
        _series_check('mmpretrain', v.get('mmpretrain'), err.get('mmpretrain'),
                      TASKS, MISSING, 'pip install mmpretrain==1.2.0'))
    checks.append(
        _series_check('mmdet', v.get('mmdet'), err.get('mmdet'),
                      ('detection', ), WARN,
                      'for detection: pip install mmdet==3.3.0 pycocotools'))
    checks.append(
        _series_check(
            'mmsegmentation', v.get('mmsegmentation'),
            err.get('mmsegmentation'), ('segmentation', ), WARN,
            'for segmentation: pip install mmsegmentation==1.2.2 ftfy '
            'regex'))
    if info.get('mixmae_mm_importable', True):
        checks.append(_check('mixmae_mm', OK, str(v.get('mixmae_mm')), TASKS))
    else:
        checks.append(
            _check(
                'mixmae_mm', MISSING, f'{v.get("mixmae_mm")} in this tree, '
                'but `import mixmae_mm` does not find it', TASKS,
                'pip install -e . in the repository (or set PYTHONPATH to '
                'it)'))
    return checks


def readiness(checks: Sequence[Dict]) -> Dict[str, bool]:
    """Per task: no finding blocks it."""
    return {
        task: not any(task in c['blocks'] for c in checks)
        for task in TASKS
    }


def exit_code(checks: Sequence[Dict]) -> int:
    """0 when everything pretraining needs is usable, 1 otherwise."""
    return 0 if readiness(checks)['pretraining'] else 1


# ---------------------------------------------------------------- report
def _format_text(info: Dict, checks: List[Dict]) -> str:
    v = info['versions']
    lines = [f'mixmae_mm environment check ({info["executable"]})']
    shown = [
        'python', 'torch', 'torchvision', 'numpy', 'mmengine', 'mmcv',
        'mmpretrain', 'mmdet', 'mmsegmentation', 'mixmae_mm'
    ]
    for name in shown:
        value = v.get(name) or 'not installed'
        if name == 'torch' and v.get('torch'):
            value += (f' (CUDA {v["torch_cuda"]} build)'
                      if v.get('torch_cuda') else ' (CPU-only build)')
        if name == 'mmcv' and info['mmcv'].get('flavor'):
            value += f' ({info["mmcv"]["flavor"]})'
        lines.append(f'  {name:<16}{value}')
    mmcv = info['mmcv']
    if mmcv.get('ops'):
        ev = mmcv.get('kernel_evidence') or {}
        kern = {
            True: 'yes',
            False: 'no CUDA kernels',
            None: 'unknown'
        }[mmcv.get('cuda_kernels')]
        lines.append(
            f'  mmcv ops        loaded ({mmcv.get("ext_file")}); CUDA '
            f'kernels: {kern} (by {ev.get("method")}: symbols '
            f'{ev.get("symbols")}, sections {ev.get("sections")})')
        if mmcv.get('gpu_ops_checked'):
            lines.append('  mmcv GPU ops    ' +
                         (mmcv.get('gpu_ops_error') or 'nms, roi_align ok'))
    else:
        lines.append(f'  mmcv ops        not loaded '
                     f'({mmcv.get("ops_error") or "mmcv missing"})')
    cuda = info['cuda']
    devices = ', '.join(f'{d["name"]} (sm {d["capability"]})'
                        for d in cuda.get('devices', [])) or 'none'
    lines.append(f'  CUDA            available: '
                 f'{"yes" if cuda.get("available") else "no"}; devices: '
                 f'{devices}')
    lines.append('')
    for c in checks:
        blocked = (f' [not ready: {", ".join(c["blocks"])}]'
                   if c['blocks'] else '')
        lines.append(f'  {c["status"]:<12}{c["name"]}: {c["message"]}'
                     f'{blocked}')
        if c['fix'] and c['status'] != OK:
            lines.append(f'  {"":<12}-> {c["fix"]}')
    ready = readiness(checks)
    lines.append('')
    lines.append('ready for: ' + ', '.join(f'{task} {"yes" if ok else "NO"}'
                                           for task, ok in ready.items()))
    return '\n'.join(lines)


def report(info: Optional[Dict] = None) -> Dict:
    """``collect()`` plus the checks, readiness, exit code and the
    support matrix, as one JSON-able dict."""
    info = collect() if info is None else info
    checks = evaluate(info)
    return dict(
        info,
        checks=checks,
        ready=readiness(checks),
        exit_code=exit_code(checks),
        support=SUPPORT)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check the environment for mixmae_mm: versions, mmcv '
        'ops and CUDA kernels, GPUs, and what to fix.')
    parser.add_argument(
        '--json', action='store_true', help='print a machine-readable dict')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # keep stdout clean for --json: packages may print while importing
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        rep = report()
    finally:
        sys.stdout = real_stdout
    if args.json:
        print(json.dumps(rep, indent=2, sort_keys=True))
    else:
        print(_format_text(rep, rep['checks']))
    return rep['exit_code']


if __name__ == '__main__':
    sys.exit(main())
