# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Plot a run's training loss and learning rate against the iteration.

Reads the ``vis_data/scalars.json`` that mmengine's ``LocalVisBackend``
writes (one JSON record per logged step; training records carry ``step`` =
the global iteration, ``loss`` averaged over the logger's window, ``lr``)
and writes a PNG with one panel per key. mmengine has no log plotting;
mmpretrain's ``analyze_logs.py`` draws every key on one axis (the lr
vanishes next to the loss) and switches to epochs for epoch-based runs.
matplotlib comes with mmengine and mmpretrain (both require it).

Example:
    python tools/analysis_tools/plot_curves.py work_dirs/demo/pretrain \\
        --out work_dirs/demo/pretrain_curves.png
"""
import argparse
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

#: key -> (iterations, values), in log order.
Series = Dict[str, Tuple[List[int], List[float]]]


def find_scalars(path: str) -> str:
    """The scalars file of a run.

    Args:
        path (str): A ``scalars.json`` file, or a work dir: its newest
            ``{timestamp}/vis_data/scalars.json`` is taken (the last
            launch; a resumed run starts a new timestamp folder, and
            ``tools/test.py``'s ``test/`` sub-folder is not searched).

    Returns:
        str: Path of the ``scalars.json`` file.
    """
    if osp.isfile(path):
        return path
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data',
                                      'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'no {{timestamp}}/vis_data/scalars.json under {path} (is '
            f'LocalVisBackend among the visualizer backends?)')
    return found[-1]


def load_scalars(path: str, keys: Sequence[str] = ('loss', 'lr')) -> Series:
    """Series of ``keys`` from a ``scalars.json`` file.

    Args:
        path (str): The ``scalars.json`` file.
        keys (Sequence[str]): Keys to read. Defaults to ('loss', 'lr').

    Returns:
        dict: For each key, the steps and values of the records holding it
        (validation records hold metrics, not these keys).
    """
    series: Series = {key: ([], []) for key in keys}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            for key in keys:
                if key in record:
                    series[key][0].append(int(record['step']))
                    series[key][1].append(float(record[key]))
    empty = [key for key, (steps, _) in series.items() if not steps]
    if empty:
        raise ValueError(f'{path} has no records of {empty}')
    return series


def plot_curves(series: Series,
                out: str,
                title: str = '',
                size: Tuple[int, int] = (900, 320),
                dpi: int = 100) -> str:
    """Write one panel per series, side by side, to a PNG file.

    Args:
        series (dict): key -> (iterations, values), as
            :func:`load_scalars` returns.
        out (str): Output PNG path (folders are created).
        title (str): Figure title. Defaults to ''.
        size (tuple[int, int]): Width and height of the picture in pixels.
            Defaults to (900, 320).
        dpi (int): Dots per inch (text size). Defaults to 100.

    Returns:
        str: ``out``.
    """
    # Figure without pyplot: no global state, no display backend needed
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (key, (steps, values)) in zip(axes, series.items()):
        ax.plot(steps, values, linewidth=1.2)
        ax.set_xlabel('iteration')
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if key == 'lr':
            # warm-up starts near zero: scientific ticks stay readable
            ax.ticklabel_format(axis='y', style='sci', scilimits=(0, 0))
    if title:
        fig.suptitle(title)
    # a fixed-size canvas (no bbox_inches='tight'), so the PNG is `size`
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot loss and lr of a run against the iteration')
    parser.add_argument(
        'path', help='a vis_data/scalars.json file or a work dir')
    parser.add_argument(
        '--out',
        default=None,
        help='output PNG (default: curves.png next to scalars.json)')
    parser.add_argument(
        '--keys',
        nargs='+',
        default=['loss', 'lr'],
        help='scalars to plot, one panel each')
    parser.add_argument('--title', default=None, help='figure title')
    parser.add_argument(
        '--size',
        nargs=2,
        type=int,
        default=[900, 320],
        metavar=('W', 'H'),
        help='picture size in pixels')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    scalars = find_scalars(args.path)
    series = load_scalars(scalars, args.keys)
    out = args.out or osp.join(osp.dirname(scalars), 'curves.png')
    title = args.title
    if title is None:
        # the run's folder name: work_dir/{timestamp}/vis_data/scalars.json
        title = osp.basename(osp.dirname(osp.dirname(osp.dirname(
            osp.abspath(scalars)))))
    plot_curves(series, out, title=title, size=tuple(args.size))
    steps = series[args.keys[0]][0]
    print(f'{len(steps)} records (iterations {steps[0]}-{steps[-1]}) of '
          f'{scalars} -> {out}')


if __name__ == '__main__':
    main()
