"""The shipped tiny model and `sdfound generate`: loads offline, every option works, bad input is one clear error."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from conftest import made_once, run_cli as cli  # `sdfound ...` in this process; the two-process test below starts real ones
from sdfound.core import models_dir

TINY = models_dir() / 'tiny'
# the environment of the processes started here
OFFLINE = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1')

def test_shipped_folder_loads_offline_with_from_pretrained(monkeypatch):
    from diffusers import StableDiffusionPipeline
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    pipe = StableDiffusionPipeline.from_pretrained(TINY, safety_checker=None, requires_safety_checker=False)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    s = pipe.scheduler.config
    assert (s.beta_schedule, s.beta_start, s.beta_end, s.num_train_timesteps) == ('scaled_linear', 0.00085, 0.012, 1000)
    assert type(pipe.scheduler).__name__ == 'DDIMScheduler' and not s.clip_sample  # what `sdfound generate` uses by default
    from safetensors.torch import load_file
    for part in ('unet', 'vae', 'text_encoder'):  # shipped in fp16
        f = next((TINY / part).glob('*.safetensors'))
        assert all(t.dtype == torch.float16 for t in load_file(f).values()), part

def test_sd_scheduler_kinds():
    from sdfound.schedulers import sd_scheduler
    for kind, name in (('pndm', 'PNDMScheduler'), ('ddim', 'DDIMScheduler'), ('ddpm', 'DDPMScheduler')):
        s = sd_scheduler(kind)
        assert type(s).__name__ == name and s.config.beta_schedule == 'scaled_linear' and s.config.clip_sample is False
    with pytest.raises(ValueError, match='unknown scheduler kind'): sd_scheduler('plms')

def test_shipped_sizes():
    # everything sdfound ships (the tiny pipeline, CLIP, evaluator, lesson models, SD's tokenizer) fits in 20 MB
    size = lambda p: sum(f.stat().st_size for f in p.rglob('*') if f.is_file())
    assert size(models_dir()) <= 20_000_000, size(models_dir())

def test_load_pipeline_tiny_runs_in_fp32_on_cpu():
    from sdfound.pipelines import load_pipeline
    pipe = load_pipeline('tiny', device='cpu')
    assert pipe.unet.dtype == torch.float32 and pipe.safety_checker is None

def test_generate_writes_png_and_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / 'a.png', tmp_path / 'b.png', tmp_path / 'c.png'
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        r = cli('generate', 'a red 7 on a blue background', '--steps', 5, '--seed', seed, '-o', out)
        assert r.returncode == 0, r.stderr
    assert Image.open(a).size == (64, 64)
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()

@pytest.mark.parametrize('extra', [
    ['--negative', 'red', '--guidance', '3'], ['--scheduler', 'euler'], ['--scheduler', 'dpm++'], ['--scheduler', 'lms'],
    ['--model', str(TINY)], ['--model', 'tiny', '--guidance', '0'],
])
def test_generate_options(tmp_path, extra):
    r = cli('generate', 'the digit three in green', '--steps', 4, *extra, '-o', tmp_path / 'x.png')
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / 'x.png').size == (64, 64)

def test_generate_in_bfloat16_is_reproducible_and_close_to_float32(tmp_path):
    outs = {}
    for name, extra in (('f32', []), ('bf16', ['--dtype', 'bfloat16']), ('bf16b', ['--dtype', 'bfloat16'])):
        r = cli('generate', 'a red 7 on a blue background', '--steps', 10, *extra, '-o', tmp_path / f'{name}.png')
        assert r.returncode == 0, r.stderr
        outs[name] = np.asarray(Image.open(tmp_path / f'{name}.png'), float)
    assert (outs['bf16'] == outs['bf16b']).all()  # same seed, same bytes, in bfloat16 too
    # bfloat16 rounds differently, so the picture is not the float32 one, but it is the same scene
    assert 0 < np.abs(outs["bf16"] - outs["f32"]).mean() < 5  # 0.9 of 255 measured

def test_generate_grid(tmp_path):
    r = cli('generate', 'a yellow 2 on a purple background', '--steps', 3, '-n', 4, '-o', tmp_path / 'g.png')
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / 'g.png').size == (128, 128)

def test_generate_img2img_keeps_more_of_the_init_image_at_low_strength(tmp_path):
    from sdfound.data import DigitScenes
    ds = DigitScenes(1, seed=5)
    init = tmp_path / 'init.png'; ds.pil(0).save(init)
    diffs = []
    for strength in (0.2, 0.9):  # the picture's own caption: what changes is only what the noise let the model redraw
        out = tmp_path / f's{strength}.png'
        r = cli('generate', ds[0]['caption'], '--steps', 10, '--init-image', init, '--strength', strength, '-o', out)
        assert r.returncode == 0, r.stderr
        diffs.append(np.abs(np.asarray(Image.open(out), float) - np.asarray(Image.open(init), float)).mean())
    assert diffs[0] < diffs[1]

def test_long_prompt_is_truncated_with_a_warning(tmp_path):
    r = cli('generate', 'a red 7 on a blue background ' * 6, '--steps', 2, '-o', tmp_path / 'x.png')
    assert r.returncode == 0 and 'warning' in r.stderr and 'ignored' in r.stderr
    assert (tmp_path / 'x.png').exists()

def test_generate_refuses_float16_on_the_cpu(tmp_path):
    r = cli('generate', 'a 7', '--dtype', 'float16', '-o', tmp_path / 'x.png', env=dict(SDFOUND_DEVICE='cpu'))
    assert r.returncode == 2 and 'needs a GPU' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path / 'x.png').exists()

def test_train_tiny_quick_runs_end_to_end(tmp_path):
    r = cli('train', 'tiny', '--quick', '--out', tmp_path / 'run')
    assert r.returncode == 0, r.stderr[-2000:]
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / 'run' / 'tiny', dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
    img = pipe('a red 7 on a blue background', num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert img.size == (64, 64)
    from sdfound.train import native_bf16
    assert json.loads((tmp_path / 'run' / 'report.json').read_text())['mixed_precision'] == ('bf16' if native_bf16() else 'no')
    # the same command resumes: every stage is already done, so it finishes without training again
    r2 = cli('train', 'tiny', '--quick', '--out', tmp_path / 'run')
    assert r2.returncode == 0 and 'clip:' not in r2.stderr
    # a run resumed after its evaluator stage trains the same UNet as the uninterrupted run: the UNet starts from the seed
    import shutil
    for part in ('tiny-clip', 'vae', 'vae-decoder', 'evaluator'): shutil.copytree(tmp_path / 'run' / part, tmp_path / 'resumed' / part)
    shutil.copy(tmp_path / 'run' / 'run.json', tmp_path / 'resumed' / 'run.json')  # the run's record: the same recipe
    r_after = cli('train', 'tiny', '--quick', '--out', tmp_path / 'resumed')
    assert r_after.returncode == 0 and 'clip:' not in r_after.stderr, r_after.stderr[-2000:]
    assert not (tmp_path / 'resumed' / 'perceptual').exists()  # a finished decoder stage needs no perceptual net
    from safetensors.torch import load_file
    unet = lambda run: load_file(tmp_path / run / 'tiny' / 'unet' / 'diffusion_pytorch_model.safetensors')
    a, b = unet('run'), unet('resumed')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the decoder stage trains the decoder alone: the encoder, and so every latent the UNet learned from, is the VAE stage's
    before, after = (load_file(tmp_path / 'run' / d / 'diffusion_pytorch_model.safetensors') for d in ('vae', 'vae-decoder'))
    encoder = [k for k in before if k.startswith(('encoder.', 'quant_conv.'))]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('decoder.'))
    # a run cut short in the UNet stage resumes from that stage's checkpoint, which holds the UNet's training alone
    state = tmp_path / 'run' / 'checkpoints' / 'unet' / 'state'
    assert sorted(p.name for p in state.glob('model*.safetensors')) == ['model.safetensors']
    shutil.rmtree(tmp_path / 'run' / 'tiny')
    r3 = cli('train', 'tiny', '--quick', '--out', tmp_path / 'run')
    assert r3.returncode == 0, r3.stderr[-2000:]
    assert 'vae:' not in r3.stderr and (tmp_path / 'run' / 'tiny' / 'model_index.json').exists()

TWO_PROCESS_OPTIONS = [['--scheduler', s] for s in ('pndm', 'ddim', 'ddpm', 'euler', 'euler_a', 'lms', 'dpm++')] + \
                      [['--init-image', '{t}/init.png', '--strength', '0.6']]
# each process makes every picture, the second in the opposite order: a picture that depended on what the process
# drew before it (a random state the seed does not reset) would differ between the two
TWO_PROCESSES = """import json, sys
from sdfound.cli import main
jobs = json.loads(sys.argv[1])
for args in (jobs if sys.argv[2] == 'a' else jobs[::-1]): main(args)"""

@pytest.fixture(scope='module')
def two_process_pictures(tmp_path_factory):
    "The pictures of every option set in TWO_PROCESS_OPTIONS, from two separate processes run side by side."
    return made_once(tmp_path_factory, 'two-processes', _draw_in_two_processes)

def _draw_in_two_processes(t: Path) -> None:
    Image.fromarray((np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)).convert('RGB').save(t / 'init.png')
    job = lambda name, i, extra: ['generate', 'a green 4 on a purple background', '--steps', '4', '--seed', '7',
                                  *[a.format(t=t) for a in extra], '-o', str(t / f'{name}{i}.png')]
    jobs = {name: [job(name, i, extra) for i, extra in enumerate(TWO_PROCESS_OPTIONS)] for name in 'ab'}
    # nothing shared but the seed and the options; one core each
    env = dict(OFFLINE, OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, '-c', TWO_PROCESSES, json.dumps(jobs[name]), name],
                              stderr=subprocess.PIPE, text=True, env=env) for name in 'ab']
    for p in procs: assert p.wait(timeout=300) == 0, p.stderr.read()

@pytest.mark.parametrize('i', range(len(TWO_PROCESS_OPTIONS)),
                         ids=[' '.join(e[:2]).replace('{t}/', '') for e in TWO_PROCESS_OPTIONS])
def test_same_seed_same_bytes_from_two_processes(two_process_pictures, i):
    a, b = (two_process_pictures / f'{name}{i}.png' for name in 'ab')
    assert a.read_bytes() == b.read_bytes()

def test_generate_with_a_learned_embedding_draws_its_concept(tmp_path):
    "The shipped <halloween> word, taken from its file: the CLI draws what a pipeline that loaded the file draws."
    from sdfound.concepts import concepts_dir
    from sdfound.pipelines import load_pipeline
    emb = concepts_dir() / 'halloween' / 'learned_embeds.safetensors'
    r = cli('generate', 'a 7 in <halloween> colours', '--steps', 6, '--embedding', emb, '-o', tmp_path / 'h.png')
    assert r.returncode == 0, r.stderr
    pipe = load_pipeline('tiny', device='cpu'); pipe.set_progress_bar_config(disable=True)
    pipe.load_textual_inversion(str(emb))
    want = pipe('a 7 in <halloween> colours', num_inference_steps=6, generator=torch.Generator('cpu').manual_seed(0)).images[0]
    got = np.asarray(Image.open(tmp_path / 'h.png'), dtype=int)
    assert np.abs(got - np.asarray(want, dtype=int)).max() <= 2
    plain = cli('generate', 'a 7 in colours', '--steps', 6, '-o', tmp_path / 'p.png')
    assert plain.returncode == 0 and np.abs(got - np.asarray(Image.open(tmp_path / 'p.png'), dtype=int)).mean() > 10

@pytest.mark.parametrize('prompt,emb,msg', [
    ('a 7 in <halloween> colours', '{t}/missing.safetensors', 'does not exist'),
    ('a 7 in <halloween> colours', '{t}', 'is a folder'),
    ('a 7 in <halloween> colours', '{t}/junk.safetensors', 'not a safetensors file'),
    ('a red 7', '{shipped}', "does not use the learned word '<halloween>'"),
])
def test_generate_embedding_bad_input_is_one_clear_error(tmp_path, prompt, emb, msg):
    from sdfound.concepts import concepts_dir
    (tmp_path / 'junk.safetensors').write_text('not weights')
    emb = emb.format(t=tmp_path, shipped=concepts_dir() / 'halloween' / 'learned_embeds.safetensors')
    r = cli('generate', prompt, '--embedding', emb, '-o', tmp_path / 'x.png')
    assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path / 'x.png').exists()
