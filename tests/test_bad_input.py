"""Bad input, everywhere a learner passes values: one clear message naming the argument, and nothing written.

The command line answers with exit code 2, one line on stderr and no traceback; Python functions raise one
`ValueError` (or `TypeError`, `ModelNotFound`) whose message names the argument."""
import math, os, struct, subprocess, zlib
from unittest import mock
from pathlib import Path
import numpy as np, pytest, torch
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
    # number options, over their whole range
    (['generate', 'a 7', '--steps', '1001', *O], 'steps must be an int ≥ 1 and ≤ 1000'),
    (['generate', 'a 7', '--guidance', '51', *O], 'guidance must be a number ≥ 0 and ≤ 50'),
    (['generate', 'a 7', '--seed', str(2**64), *O], 'seed must be an int ≥ 0 and ≤ 18446744073709551615'),
    (['generate', 'a 7', '--scheduler', 'pndm', '--steps', '3', *O], 'PNDM scheduler needs steps ≥ 4'),
    (['generate', 'a 7', '--scheduler', 'pndm', '--steps', '2', '--init-image', '{t}/init.png', '--strength', '1', *O],
     'PNDM scheduler needs steps ≥ 4'),
    (['generate', 'a cat', '--model', 'sd15-mini', '-n', '9', *O], 'n must be ≤ 8 for 512-pixel pictures'),
    (['generate', 'a 7', '-n', '65', *O], 'n must be between 1 and 64'),
    # output paths, before the work
    (['generate', 'a 7', '-o', '{t}/' + 'x' * 300 + '.png'], 'this file system takes at most'),
    (['scenes', '-o', '{t}/' + 'y' * 300 + '.png'], 'this file system takes at most'),
    # tensor files
    (['generate', 'a <w>', '--embedding', '{t}/rank3.safetensors', *O], 'of shape (3, 5, 128)'),
    (['generate', 'a <w>', '--embedding', '{t}/empty.safetensors', *O], 'of shape (0, 128)'),
    (['generate', 'a <w>', '--embedding', '{t}/nan.safetensors', *O], 'not finite'),
    (['generate', 'a <w>', '--embedding', '{t}/ints.safetensors', *O], 'torch.int64 tensor'),
    (['generate', 'a red 7', '--embedding', '{t}/red.safetensors', *O], "would take over 'red'"),
    (['generate', 'a 7', '--embedding', '{t}/blank.safetensors', *O], 'names its word'),
    (['generate', 'a <w>', '--embedding', '{t}/long.safetensors', *O], 'holds 40 vectors; this model reads at most 30'),
    (['generate', 'a <w>', '--embedding', '{t}/narrow.safetensors', *O], 'vectors of 64 numbers'),
    (['train', 'tiny', '--restart', '--out', '{t}'], 'not deleting them'),
    # fast drawing, and the distillation behind it
    (['generate', 'a 7', '--fast', '--negative', 'red', *O], 'takes no negative prompt'),
    (['generate', 'a 7', '--fast', '--guidance', '3', *O], 'takes no guidance scale'),
    (['generate', 'a 7', '--fast', '--guidance', '7.5', *O], 'takes no guidance scale'),  # even the default, if given
    (['generate', 'a 7', '--fast', '--scheduler', 'ddim', *O], 'drop the scheduler'),
    (['generate', 'a 7', '--fast', '--init-image', '{t}/init.png', *O], 'does not start from an init image'),
    (['generate', 'a 7', '--fast', '--steps', '51', *O], 'at most 50 steps'),
    (['generate', 'a cat', '--fast', '--model', 'sd15-mini', *O], 'has no few-step adapter'),
    (['train', 'tiny', '--model', 'tiny', '--out', '{t}/run'], '--model names the teacher'),
    (['train', 'distill', '--model', 'no such model', '--out', '{t}/run'], 'unknown model'),
    (['train', 'distill', '--model', 'sd15-mini', '--out', '{t}/run'], '64-pixel pictures'),
    (['train', 'distill', '--restart', '--out', '{t}'], 'not deleting them'),
]

EMBEDDINGS = dict(rank3={'<w>': torch.randn(3, 5, 128)}, empty={'<w>': torch.zeros(0, 128)},
                  nan={'<w>': torch.full((1, 128), math.nan)}, ints={'<w>': torch.ones(1, 128, dtype=torch.long)},
                  red={'red': torch.randn(1, 128)}, blank={' ': torch.randn(1, 128)}, long={'<w>': torch.randn(40, 128)},
                  narrow={'<w>': torch.randn(1, 64)})

@pytest.fixture
def files(tmp_path):
    from safetensors.torch import save_file
    Image.new('RGB', (8, 8)).save(tmp_path / 'init.png')
    (tmp_path / 'bad.png').write_text('not a png')
    huge_png(tmp_path / 'huge.png')
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'folder.png').mkdir()
    for name, tensors in EMBEDDINGS.items(): save_file(tensors, tmp_path / f'{name}.safetensors')
    return tmp_path

@pytest.mark.parametrize('args,msg', CLI_CASES, ids=[' '.join(a)[:70] for a, _ in CLI_CASES])
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
    (lambda t: _scenes(5, res=10**6), 'res must be an int between 8 and 1024'),
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
    # numbers and sizes, their whole range
    (lambda t: _core('seed_everything', True), 'seed must be an int'),
    (lambda t: _core('seed_everything', 2**64), 'seed must be an int'),
    (lambda t: _core('image_grid', [Image.new('RGB', (2, 2))], rows=0), 'rows must be'),
    (lambda t: _core('image_grid', [Image.new('RGB', (2, 2))], cols=1.5), 'cols must be'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).enlarge(Image.new('RGB', (0, 0))), 'empty'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).enlarge(Image.new('RGB', (2, 2)), size=0), 'size must be'),
    (lambda t: __import__('sdfound.pipelines', fromlist=['x']).generators(1.5, 2), 'seed must be'),
    (lambda t: _tiny_by_hand(height=100), 'height must be a multiple of 8'),
    (lambda t: _tiny_by_hand(width=7), 'width must be an int ≥ 32'),
    (lambda t: _tiny_by_hand(height=4096), 'height must be an int ≥ 32 and ≤ 256'),
    (lambda t: _generate(steps=1001), 'steps must be an int ≥ 1 and ≤ 1000'),
    (lambda t: _generate(guidance=50.5), 'guidance must be'),
    # the environment
    (lambda t: _device('garbage'), "SDFOUND_DEVICE 'garbage' is not a device"),
    (lambda t: _device('cuda'), 'which this machine does not have'),
    (lambda t: _device('mps'), 'which this machine does not have'),
    (lambda t: _core('get_device', 'tpu:0'), "device 'tpu:0' is not a device"),
    (lambda t: _pipeline('tiny', dtype='float8'), 'unknown dtype'),
    (lambda t: _unwritable_cache(t), 'set SDFOUND_CACHE to a folder you can write to'),
    # training folders and state
    (lambda t: _fit(loss_fn=lambda m, b: m(b['x']).sum() * math.nan), 'training diverged'),
    (lambda t: _fit_from(t, '{"step": 1, "losses"'), 'cannot read the checkpoint record'),
    (lambda t: _fit_from(t, '[1, 2]'), 'not a JSON object'),
    (lambda t: _fit_from(t, '{"step": 1, "losses": [0.1], "run": null}'), 'records no run'),
]

def _core(name, *args, **kw):
    from sdfound import core
    return getattr(core, name)(*args, **kw)

def _device(value):
    with mock.patch.dict(os.environ, SDFOUND_DEVICE=value): return _core('get_device')

def _tiny_by_hand(**kw):
    from sdfound.pipelines import load_pipeline
    from sdfound.sampling import generate_by_hand, parts
    return generate_by_hand('a 7', **parts(load_pipeline('tiny', device='cpu')), num_inference_steps=2, **kw)

def _unwritable_cache(t: Path):
    "A stand-in whose cache folder cannot be made (a file stands where its parent folder should)."
    blocker = t.parent / f'{t.name}-blocker'
    blocker.write_text('a file, not a folder')
    try:
        with mock.patch.dict(os.environ, SDFOUND_CACHE=str(blocker / 'cache')): return _pipeline('sd15-mini')
    finally: blocker.unlink()

def _fit_from(t: Path, progress: str):
    "`fit` resuming from a checkpoint folder whose progress record holds `progress`."
    folder = t.parent / f'{t.name}-ckpt'
    folder.mkdir()
    (folder / 'progress.json').write_text(progress)
    return _fit(ckpt_dir=folder)

@pytest.mark.parametrize('call,msg', PY_CASES, ids=[f'py{i}' for i in range(len(PY_CASES))])
def test_python_functions_refuse_bad_input(tmp_path, call, msg):
    from sdfound.pipelines import ModelNotFound
    before = set(tmp_path.rglob('*'))
    with pytest.raises((ValueError, TypeError, ModelNotFound, FloatingPointError)) as e: call(tmp_path)
    assert msg in str(e.value), str(e.value)
    assert set(tmp_path.rglob('*')) == before

def test_the_list_is_long():
    assert len(CLI_CASES) + len(PY_CASES) + 1 >= 100

# What only happens while the work runs: each stops with one line, and nothing half-written
def _cli(args, files, capsys):
    from sdfound.cli import main
    with pytest.raises(SystemExit) as e: main([str(a).format(t=files) for a in args])
    return e.value.code, capsys.readouterr().err

def test_a_picture_that_is_not_finite_is_an_error_not_a_black_png(files, capsys, monkeypatch):
    import diffusers, numpy as np
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, '__call__',
                        lambda self, **kw: mock.Mock(images=np.full((1, 64, 64, 3), np.nan, dtype=np.float32)))
    code, err = _cli(['generate', 'a 7', '--steps', '2', '-o', '{t}/x.png'], files, capsys)
    assert code == 2 and 'not finite' in err and not (files / 'x.png').exists()

def test_a_full_disk_is_one_line_and_leaves_no_file(files, capsys, monkeypatch):
    import errno
    def full(self, *a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    before = set(files.iterdir())
    monkeypatch.setattr(Image.Image, 'save', full)
    code, err = _cli(['scenes', '-n', '2', '-o', '{t}/x.png'], files, capsys)
    assert code == 2 and 'No space left on device' in err and err.count('\n') == 1
    assert set(files.iterdir()) == before  # not even the temporary file

def test_out_of_memory_is_one_line_that_says_how_to_fit(files, capsys, monkeypatch):
    import diffusers
    def oom(self, **kw): raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, '__call__', oom)
    code, err = _cli(['generate', 'a 7', '--steps', '2', '-n', '8', '-o', '{t}/x.png'], files, capsys)
    assert code == 1 and 'out of memory' in err and '-n' in err and 'Traceback' not in err and err.count('\n') == 1

def test_an_unwritable_folder_is_refused_before_the_work(files, capsys, monkeypatch):
    real = os.access  # root may write anything: stand in for a folder its owner protected
    monkeypatch.setattr(os, 'access', lambda p, mode: False if Path(p) == files / 'folder' else real(p, mode))
    code, err = _cli(['generate', 'a 7', '-o', '{t}/folder/x.png'], files, capsys)
    assert code == 2 and 'is not writable' in err

def test_a_new_picture_gets_the_umask_and_a_protected_one_is_kept(files, capsys, monkeypatch):
    from sdfound.cli import main
    old = os.umask(0o027)
    try: assert main(['scenes', '-n', '2', '-o', str(files / 'new.png')]) == 0
    finally: os.umask(old)
    assert (files / 'new.png').stat().st_mode & 0o777 == 0o640  # what any new file gets (mkstemp alone: 0600)
    real = os.access  # root may write anything: stand in for a file its owner protected
    monkeypatch.setattr(os, 'access', lambda p, mode: False if Path(p) == files / 'new.png' else real(p, mode))
    before = (files / 'new.png').read_bytes()
    code, err = _cli(['scenes', '-n', '3', '-o', '{t}/new.png'], files, capsys)
    assert code == 2 and 'write-protected' in err and (files / 'new.png').read_bytes() == before

@pytest.mark.parametrize('value,msg', [('garbage', 'is not a device'), ('cuda', 'does not have'), ('mps', 'does not have')])
def test_a_bad_device_in_the_environment_is_one_line(files, capsys, monkeypatch, value, msg):
    monkeypatch.setenv('SDFOUND_DEVICE', value)
    code, err = _cli(['generate', 'a 7', '--steps', '2', '-o', '{t}/x.png'], files, capsys)
    assert code == 2 and msg in err and 'SDFOUND_DEVICE' in err and not (files / 'x.png').exists()

def test_a_broken_stand_in_cache_is_built_again(tmp_path, monkeypatch):
    from sdfound.pipelines import load_pipeline
    from sdfound.sd15 import standin_folder
    monkeypatch.setenv('SDFOUND_CACHE', str(tmp_path))
    weights = standin_folder('sd15-mini') / 'unet' / 'diffusion_pytorch_model.safetensors'
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short
    assert load_pipeline('sd15-mini', device='cpu').unet.config.sample_size == 64
    assert weights.stat().st_size > 1000

@pytest.mark.parametrize('mode', ['RGBA', 'CMYK', 'L', 'P', 'I;16', 'LA', 'F'])
def test_generate_reads_a_picture_of_any_mode_as_rgb(mode):
    from sdfound.core import to_rgb
    from sdfound.pipelines import generate
    grey = Image.new('RGB', (64, 64), (128, 128, 128)).convert(mode) if mode not in ('I;16', 'F') else None
    if mode == 'I;16': grey = Image.fromarray(np.full((64, 64), 32896, dtype=np.uint16))  # 128 × 257
    if mode == 'F': grey = Image.fromarray(np.full((64, 64), 0.5, dtype=np.float32))
    rgb = np.asarray(to_rgb(grey))
    assert rgb.shape == (64, 64, 3) and abs(rgb.mean() - 128) <= 1  # neither white nor clipped
    out = generate('a red 7 on a blue background', steps=2, init_image=grey, strength=0.5)
    assert out.size == (64, 64) and out.mode == 'RGB'

def test_a_16_bit_png_through_the_cli_is_not_turned_white(files, capsys):
    from sdfound.cli import _read_init_image
    Image.fromarray(np.full((64, 64), 20000, dtype=np.uint16)).save(files / 'sixteen.png')
    assert Image.open(files / 'sixteen.png').mode.startswith('I')
    assert abs(np.asarray(_read_init_image(str(files / 'sixteen.png'))).mean() - 20000 / 257) <= 1

def test_ctrl_c_is_one_line_and_exit_code_130(tmp_path):
    "Ctrl-C once the command shows it has started (its first progress line), not after a guessed sleep."
    import signal
    p = subprocess.Popen(['sdfound', 'train', 'tiny', '--out', str(tmp_path / 'run')], stderr=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=dict(OFFLINE, OMP_NUM_THREADS='1'))
    first = p.stderr.read(1)  # rendering the pictures prints a progress bar as soon as it begins
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert first and p.returncode == 130, err[-2000:]
    assert 'Traceback' not in err and err.rstrip().splitlines()[-1] == 'sdfound train: interrupted; the same command resumes the run'

def test_a_closed_pipe_is_quiet_and_the_picture_intact(tmp_path):
    "`sdfound scenes ... | head -0`: the reader is gone before the command says what it wrote."
    p = subprocess.Popen(['sdfound', 'scenes', '-n', '2', '-o', str(tmp_path / 'x.png')], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=OFFLINE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == ''
    assert Image.open(tmp_path / 'x.png').size == (256, 128)
