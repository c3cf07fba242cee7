"""Bad input, everywhere a learner passes values: one clear message naming the argument, and nothing written.

The command line answers with exit code 2, one line on stderr and no traceback; Python functions raise one
`ValueError` (or `TypeError`, `ModelNotFound`) whose message names the argument."""
import math, os, struct, subprocess, zlib
from pathlib import Path
import pytest, torch
from PIL import Image

OFFLINE = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

def huge_png(path, side=20_000):
    "A tiny file that claims to be a side×side picture: PIL refuses it as a decompression bomb."
    chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 8, 2, 0, 0, 0)) + chunk(b'IEND', b''))

O = ['-o', '{t}/x.png']
CLI_CASES = [
    # generate
    (['generate', '', *O], 'prompt must be some text'),
    (['generate', 'a 7', '--steps', '0', *O], 'steps must be'),
    (['generate', 'a 7', '--steps', '-3', *O], 'steps must be'),
    (['generate', 'a 7', '--steps', 'ten', *O], "invalid int value: 'ten'"),
    (['generate', 'a 7', '--guidance', '-1', *O], 'guidance must be'),
    (['generate', 'a 7', '--guidance', 'nan', *O], 'guidance must be'),
    (['generate', 'a 7', '--guidance', 'inf', *O], 'guidance must be'),
    (['generate', 'a 7', '-n', '0', *O], 'n must be between'),
    (['generate', 'a 7', '-n', '65', *O], 'n must be between'),
    (['generate', 'a 7', '--seed', '-1', *O], 'seed must be'),
    (['generate', 'a 7', '--strength', '0.5', *O], '--strength needs --init-image'),
    (['generate', 'a 7', '--init-image', '{t}/init.png', '--strength', '0', *O], 'strength must be in (0, 1]'),
    (['generate', 'a 7', '--init-image', '{t}/init.png', '--strength', '1.5', *O], 'strength must be in (0, 1]'),
    (['generate', 'a 7', '--init-image', '{t}/init.png', '--strength', 'nan', *O], 'strength must be in (0, 1]'),
    (['generate', 'a 7', '--init-image', '{t}/init.png', '--strength', '0.01', *O], 'runs no step'),
    (['generate', 'a 7', '--init-image', '{t}/missing.png', *O], 'does not exist'),
    (['generate', 'a 7', '--init-image', '{t}/folder', *O], 'is a folder'),
    (['generate', 'a 7', '--init-image', '{t}/bad.png', *O], 'cannot read init image'),
    (['generate', 'a 7', '--init-image', '{t}/huge.png', *O], 'DecompressionBombError'),
    (['generate', 'a 7', '--scheduler', 'magic', *O], 'unknown scheduler'),
    (['generate', 'a 7', '--dtype', 'float8', *O], 'unknown dtype'),
    (['generate', 'a 7', '--model', 'no such model', *O], 'unknown model'),
    (['generate', 'a 7', '--model', '{t}/folder', *O], 'no model_index.json'),
    (['generate', 'a 7', '--model', 'sd15', *O], 'sd15-mini'),  # a hub id, offline: names what works offline
    (['generate', 'a 7', '-o', '{t}/nofolder/x.png'], 'does not exist'),
    (['generate', 'a 7', '-o', '{t}/x.jpg'], 'must be a .png file'),
    (['generate', 'a 7', '-o', '{t}/folder.png'], 'is a folder'),
    # scenes
    (['scenes', '-n', '0', *O], '-n must be between'),
    (['scenes', '-n', '5000', *O], '-n must be between'),
    (['scenes', '--seed', '-1', *O], '--seed must be'),
    (['scenes', '-o', '{t}/x.txt'], 'must be a .png file'),
    # train
    (['train', 'tiny', '--out', '{t}/nofolder/run'], 'does not exist'),
    (['train', 'tiny', '--out', '{t}/init.png'], 'is a file'),
    (['train', 'tiny', '--seed', '-1', '--out', '{t}/run'], '--seed must be'),
    (['train', 'huge', '--out', '{t}/run'], "invalid choice: 'huge'"),
]

@pytest.fixture
def files(tmp_path):
    Image.new('RGB', (8, 8)).save(tmp_path / 'init.png'); (tmp_path / 'bad.png').write_text('not a png'); huge_png(tmp_path / 'huge.png')
    (tmp_path / 'folder').mkdir(); (tmp_path / 'folder.png').mkdir()
    return tmp_path

@pytest.mark.parametrize('args,msg', CLI_CASES, ids=[' '.join(a) for a, _ in CLI_CASES])
def test_cli_refuses_bad_input(files, args, msg, capsys, monkeypatch):
    from sdfound.cli import main
    for k, v in OFFLINE.items(): monkeypatch.setenv(k, v)
    before = set(files.rglob('*'))
    with pytest.raises(SystemExit) as e: main([a.format(t=files) for a in args])  # in this process: as `sdfound`, without its start-up time
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert msg in err and 'Traceback' not in err, err
    assert set(files.rglob('*')) == before  # nothing written

@pytest.mark.parametrize('args,msg', [CLI_CASES[6], CLI_CASES[11], CLI_CASES[16]], ids=['guidance inf', 'strength 0', 'init image folder'])
def test_the_sdfound_command_refuses_bad_input(files, args, msg):
    before = set(files.rglob('*'))
    r = subprocess.run(['sdfound', *[a.format(t=files) for a in args]], capture_output=True, text=True, env=OFFLINE)
    assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert r.stderr.count('\n') == 1 and r.stdout == ''  # one line, and only that
    assert set(files.rglob('*')) == before

def test_cli_refuses_float16_on_the_cpu(files):
    r = subprocess.run(['sdfound', 'generate', 'a 7', '--dtype', 'float16', '-o', files / 'x.png'], capture_output=True, text=True,
                       env=dict(OFFLINE, SDFOUND_DEVICE='cpu'))
    assert r.returncode == 2 and 'needs a GPU' in r.stderr and 'Traceback' not in r.stderr and not (files / 'x.png').exists()

# Python functions the lessons call
def _sched():
    from sdfound.schedulers import sd_scheduler
    return sd_scheduler('ddim')

def _fit(**kw):
    from sdfound.train import fit
    model = torch.nn.Linear(2, 1)
    args = dict(model=model, loss_fn=lambda m, b: m(b['x']).pow(2).mean(), get_batch=lambda s: dict(x=torch.randn(4, 2)), steps=2, progress=False)
    return fit(**{**args, **kw})

def _by_hand(fn, **kw):
    from sdfound import sampling
    return getattr(sampling, fn)('a 7', None, None, None, None, _sched(), **kw)  # checked before any part is used

def _generate(**kw):
    from sdfound.pipelines import generate
    return generate(**{'prompt': 'a 7', **kw})

def _scenes(*a, **kw):
    from sdfound.data import DigitScenes
    return DigitScenes(*a, **kw)

def _pipeline(model, **kw):
    from sdfound.pipelines import load_pipeline
    return load_pipeline(model, device='cpu', **kw)

PY_CASES = [
    (lambda t: _pipeline('no such model'), 'unknown model'),
    (lambda t: _pipeline(t), 'no model_index.json'),
    (lambda t: _pipeline('tiny', scheduler='magic'), 'unknown scheduler'),
    (lambda t: _generate(prompt=''), 'prompt must be'),
    (lambda t: _generate(prompt=None), 'prompt must be'),
    (lambda t: _generate(steps=0), 'steps must be'),
    (lambda t: _generate(steps=2.5), 'steps must be'),
    (lambda t: _generate(guidance=math.nan), 'guidance must be'),
    (lambda t: _generate(n=0), 'n must be'),
    (lambda t: _generate(seed=-1), 'seed must be'),
    (lambda t: _generate(init_image=Image.new('RGB', (8, 8)), strength=0), 'strength must be'),
    (lambda t: _generate(init_image='init.png'), 'init_image must be a PIL picture'),
    (lambda t: _generate(negative=3), 'negative must be text'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).img2img_timesteps(_sched(), 0, 0.5), 'steps must be'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).img2img_timesteps(_sched(), 10, math.nan), 'strength must be'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).img2img_timesteps(_sched(), 10, 1.5), 'strength must be'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).generators(0, 0), 'n must be'),
    (lambda t: _scenes(-1), 'n must be'),
    (lambda t: _scenes(5, seed=-2), 'seed must be'),
    (lambda t: _scenes(5, seed=1.5), 'seed must be'),
    (lambda t: _scenes(5, res=4), 'res must be'),
    (lambda t: _scenes(5, fonts=['Comic Sans']), 'unknown font'),
    (lambda t: _scenes(5, fonts=[]), 'font'),
    (lambda t: _scenes(5, size_range=(0.8, 0.2)), 'size_range must'),
    (lambda t: _scenes(5, size_range=(math.nan, 1)), 'size_range must'),
    (lambda t: _fit(steps=0), 'steps must be'),
    (lambda t: _fit(lr=math.nan), 'lr must be'),
    (lambda t: _fit(lr=-1e-3), 'lr must be'),
    (lambda t: _fit(weight_decay=math.inf), 'weight_decay must be'),
    (lambda t: _fit(warmup=0), 'warmup must be'),
    (lambda t: _fit(ema=1.5), 'ema must be'),
    (lambda t: _fit(get_batch=None), 'must be functions'),
    (lambda t: _by_hand('generate_by_hand', num_inference_steps=0), 'num_inference_steps must be'),
    (lambda t: _by_hand('generate_by_hand', guidance_scale=math.inf), 'guidance_scale must be'),
    (lambda t: _by_hand('sample_with_optimiser', num_inference_steps=-1), 'num_inference_steps must be'),
    (lambda t: __import__('sdfound.sampling', fromlist=['x']).img2img_by_hand(None, 'a 7', None, None, None, None, _sched(), strength=0), 'strength must be'),
    (lambda t: __import__('sdfound.sampling', fromlist=['x']).momentum(1.0), 'beta must be'),
    (lambda t: __import__('sdfound.sampling', fromlist=['x']).momentum(math.nan), 'beta must be'),
    (lambda t: __import__('sdfound.sampling', fromlist=['x']).adam(beta1=1.0), 'beta1 must be'),
    (lambda t: __import__('sdfound.sampling', fromlist=['x']).adam(eps=0), 'eps must be'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).noise_predictions(None, torch.zeros(2, 4, 8, 8), 0, ['a 7', 'a 3', 'a 1']), 'one prompt'),
]

@pytest.mark.parametrize('call,msg', PY_CASES, ids=[f'py{i}' for i in range(len(PY_CASES))])
def test_python_functions_refuse_bad_input(tmp_path, call, msg):
    from sdfound.pipelines import ModelNotFound
    before = set(tmp_path.rglob('*'))
    with pytest.raises((ValueError, TypeError, ModelNotFound)) as e: call(tmp_path)
    assert msg in str(e.value), str(e.value)
    assert set(tmp_path.rglob('*')) == before

def test_the_list_is_long():
    assert len(CLI_CASES) + len(PY_CASES) + 1 >= 75
