"""model-index.yml and the metafiles: every config listed once, every path
real, read by modelindex (what mim uses) and by `mim search` itself."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import DefaultScope
from modelindex.load_model_index import load

ROOT = Path(__file__).resolve().parents[1]
#: The configs the index must cover: the rule of test_configs.py.
CONFIGS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
    if '_base_' not in p.parts)


def _metafiles():
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    return index['Import']


def _models():
    """(metafile, model dict) of every model, read as plain YAML."""
    return [
        (metafile, model) for metafile in _metafiles()
        for model in yaml.safe_load((ROOT / metafile).read_text())['Models']
    ]


def _collections():
    return {
        c['Name']: c
        for metafile in _metafiles()
        for c in yaml.safe_load((ROOT / metafile).read_text())['Collections']
    }


def _slug(heading):
    """The anchor of a Markdown heading (GitHub's and myst-parser's)."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def test_every_config_is_listed_once_and_every_path_exists():
    listed = [model['Config'] for _, model in _models()]
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    missing = sorted(set(CONFIGS) - set(listed))
    assert not missing, f'configs without a model-index entry: {missing}'
    stale = sorted(p for p in listed if not (ROOT / p).is_file())
    assert not stale, f'listed configs that do not exist: {stale}'
    assert not set(listed) - set(CONFIGS), '_base_ files are not models'


def test_names_are_unique_and_follow_the_config_files():
    names = [model['Name'] for _, model in _models()]
    assert len(names) == len(set(names))
    for metafile, model in _models():
        assert model['Name'] == Path(model['Config']).stem, model['Name']
        # each metafile lists the configs of its own folder tree
        assert model['Config'].startswith(str(Path(metafile).parent) + '/')


def test_collections_links_and_quoted_results():
    collections = _collections()
    names = {model['Name'] for _, model in _models()}

    def headings(page):
        return {
            _slug(line.lstrip('#'))
            for line in (ROOT / page).read_text().splitlines()
            if line.startswith('#')
        }

    for name, c in collections.items():
        for key in ('Training Data', 'Training Techniques',
                    'Training Resources', 'Architecture'):
            assert c['Metadata'].get(key), (name, key)
        assert c['Paper']['URL'] == 'https://arxiv.org/abs/2205.13137'
        # a section of the documentation site (docs/en), whose anchors are
        # the headings' slugs (myst_heading_anchors in docs/en/conf.py)
        page, anchor = c['README'].split('#')
        assert page.startswith('docs/en/'), c['README']
        assert (ROOT / page).is_file() and anchor in headings(page), \
            c['README']
        assert (ROOT / c['Code']['URL']).is_file(), c['Code']
    for _, model in _models():
        assert model['In Collection'] in collections, model['Name']
        assert set(model.get('Downstream', [])) <= names, model['Name']
        assert 'Weights' not in model  # nothing is published yet
        if model.get('Results'):
            # every result is the paper's: say so where the model is
            assert 'quoted from the MixMAE paper' in model['Notes']


def test_modelindex_loads_it_through_the_mim_links():
    mim_dir = ROOT / 'mixmae_mm' / '.mim'
    for name in ('configs', 'tools', 'model-index.yml'):
        assert (mim_dir / name).resolve() == (ROOT / name).resolve(), name
    index = load(str(mim_dir / 'model-index.yml'))
    assert index.check(silent=True) == []
    assert sorted(m.config for m in index.models) == CONFIGS
    for m in index.models:  # Config paths are relative to .mim, as mim's
        assert (mim_dir / m.config).is_file(), m.config


def _count_parameters(path):
    cfg = Config.fromfile(str(ROOT / path))
    scope = cfg.default_scope
    importlib.import_module(f'{scope}.models')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    'model', [m for _, m in _models() if re.search(r'demo|toy', m['Name'])],
    ids=lambda m: m['Name'])
def test_small_models_have_the_listed_parameter_count(model):
    """The tiny configs change most; their metafile counts must follow (the
    full-size ones are counted the same way, see the metafile headers)."""
    assert _count_parameters(model['Config']) == \
        model['Metadata']['Parameters']


def test_mim_search_lists_every_config():
    # From the checkout: the mixmae_mm.egg-info tools/setup_env.sh writes
    # there is how mim (pkg_resources) finds the editable package
    # (docs/en/tools.md, "TensorBoard, mim and curves").
    res = subprocess.run([sys.executable, '-m', 'mim', 'search', 'mixmae_mm'],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, (
        'no mixmae_mm.egg-info in the checkout? (tools/setup_env.sh writes '
        'it) ' + res.stderr[-3000:])
    found = re.findall(r'^config id: (\S+)$', res.stdout, flags=re.M)
    assert sorted(found) == sorted(Path(p).stem for p in CONFIGS)
