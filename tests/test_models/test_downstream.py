"""``import mixmae_mm`` registers the compilable detector and segmentor
classes into mmdet's and mmseg's registries, and still imports where mmdet
is installed but refuses to import."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_registers_the_mmdet_and_mmseg_classes():
    import mixmae_mm  # noqa: F401
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for name in ('CompilableMaskRCNN', 'CompilableRetinaNet'):
        assert DET.get(name).__module__.startswith('mixmae_mm.'), name
    assert SEG.get('CompilableEncoderDecoder').__module__.startswith(
        'mixmae_mm.')


def test_an_mmdet_that_does_not_import_is_a_warning(tmp_path):
    # as with mmcv-lite (no compiled ops), where mmdet's import fails
    fake = tmp_path / 'mmdet'
    fake.mkdir()
    (fake / '__init__.py').write_text(
        "raise ModuleNotFoundError(\"No module named 'mmcv._ext'\")\n")
    res = subprocess.run(
        [sys.executable, '-W', 'always', '-c', 'import mixmae_mm'],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={'PYTHONPATH': f'{tmp_path}:{ROOT}', 'PATH': '/usr/bin:/bin'})
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'mmdet is installed but does not import' in res.stderr
    assert "No module named 'mmcv._ext'" in res.stderr
