"""tools/analysis_tools/plot_curves.py on a synthetic scalars.json."""
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    path = ROOT / 'tools' / 'analysis_tools' / 'plot_curves.py'
    spec = importlib.util.spec_from_file_location('plot_curves', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Training records as LocalVisBackend writes them (iteration in `step`),
#: with a validation record (metrics only, `step` = epoch) between them.
STEPS = [1, 2, 3, 4, 5, 6]
LOSSES = [1.07, 1.05, 0.98, 0.91, 0.88, 0.86]
LRS = [7.5e-08, 7.5e-05, 7.5e-05, 7.49e-05, 7.4e-05, 7.3e-05]


def _write_run(work_dir: Path, timestamp: str) -> Path:
    vis_data = work_dir / timestamp / 'vis_data'
    vis_data.mkdir(parents=True)
    lines = []
    for i, (step, loss, lr) in enumerate(zip(STEPS, LOSSES, LRS)):
        lines.append(
            json.dumps(
                dict(
                    base_lr=lr,
                    lr=lr,
                    data_time=0.01,
                    loss=loss,
                    time=1.0,
                    epoch=1 + i // 3,
                    iter=step,
                    step=step)))
        if step == 3:
            lines.append(json.dumps({'accuracy/top1': 30.0, 'step': 1}))
    path = vis_data / 'scalars.json'
    path.write_text('\n'.join(lines) + '\n\n')
    return path


def test_load_scalars_returns_the_training_series(tmp_path):
    tool = _tool()
    path = _write_run(tmp_path, '20261130_100000')
    series = tool.load_scalars(str(path))
    assert list(series) == ['loss', 'lr']
    assert series['loss'] == (STEPS, LOSSES)
    assert series['lr'] == (STEPS, LRS)
    # a validation metric is a key of its own records only
    assert tool.load_scalars(str(path), ['accuracy/top1']) == {
        'accuracy/top1': ([1], [30.0])
    }
    with pytest.raises(ValueError, match='no records'):
        tool.load_scalars(str(path), ['loss', 'grad_norm'])


def test_find_scalars_takes_the_last_launch(tmp_path):
    tool = _tool()
    _write_run(tmp_path, '20261130_100000')
    newest = _write_run(tmp_path, '20261130_110000')
    _write_run(tmp_path / 'test', '20261130_120000')  # tools/test.py's run
    assert tool.find_scalars(str(tmp_path)) == str(newest)
    assert tool.find_scalars(str(newest)) == str(newest)
    with pytest.raises(FileNotFoundError, match='LocalVisBackend'):
        tool.find_scalars(str(tmp_path / 'empty'))


def test_cli_writes_a_png_of_the_asked_size(tmp_path, capsys):
    tool = _tool()
    path = _write_run(tmp_path, '20261130_100000')
    tool.main([str(tmp_path), '--size', '640', '240'])
    out = path.parent / 'curves.png'  # default: next to scalars.json
    assert Image.open(out).size == (640, 240)
    assert '6 records (iterations 1-6)' in capsys.readouterr().out

    custom = tmp_path / 'pics' / 'loss.png'
    tool.main([str(path), '--keys', 'loss', '--out', str(custom)])
    image = Image.open(custom)
    assert image.format == 'PNG' and image.size == (900, 320)
