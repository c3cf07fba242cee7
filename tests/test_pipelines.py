"""The pipelines-tour helpers: grids, seeds, guidance by hand, the latents callback, img2img's step count, and
(`sdfound.personalize`) textual inversion / Dreambooth on a small random pipeline (so these tests need neither the shipped model nor a network)."""
import math
import numpy as np, pytest, torch
import diffusers as d
from conftest import random_small_pipeline
from PIL import Image
from safetensors.torch import load_file
from sdfound.core import image_grid
from sdfound.data import DigitScenes, caption
from sdfound.pipelines import (load_pipeline, img2img_from, is_tiny, for_model, image_size, enlarge, generators,
                               noise_predictions, guide, decode_latents, img2img_timesteps, latents_callback, cuda_peak,
                               encode_images)
from sdfound.personalize import (tokenize_prompts, fixed_noise_loss, add_token, train_textual_inversion,
                                 save_textual_inversion, train_dreambooth, save_dreambooth, concept_tokens)
from sdfound.schedulers import sd_scheduler

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::FutureWarning')
PROMPT = 'a red 7 on a blue background'

def gen(seed): return torch.Generator().manual_seed(seed)

@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    "A randomly initialised small SD pipeline in diffusers' layout on disk: 64×64 pictures, 8×8×4 latents."
    p = random_small_pipeline(sd_scheduler('pndm'))
    path = tmp_path_factory.mktemp('pipe') / 'tiny'
    p.save_pretrained(path)
    return path

def fresh(saved, **kw):
    p = load_pipeline(saved, device='cpu', **kw)
    p.set_progress_bar_config(disable=True)
    return p

@pytest.fixture(scope='module')
def pipe(saved): return fresh(saved)

def ddim(pipe): return d.DDIMScheduler.from_config(pipe.scheduler.config)

# --- choosing and showing

def test_tiny_pipeline_is_recognised_and_makes_64px_pictures(pipe):
    assert is_tiny(pipe) and image_size(pipe) == 64
    assert for_model(pipe, 'digits', 'astronauts') == 'digits'

def test_enlarge_blows_up_small_pictures_only():
    small, big = Image.new('RGB', (64, 64)), Image.new('RGB', (512, 512))
    assert enlarge(small).size == (192, 192) and enlarge(big).size == (512, 512)
    assert [im.size for im in enlarge([small, small], 128)] == [(128, 128)] * 2

def test_grid_of_a_batch_has_the_right_shape(pipe):
    images = pipe([PROMPT] * 6, num_inference_steps=2, generator=generators(0, 6)).images
    assert len(images) == 6 and all(im.size == (64, 64) for im in images)
    assert image_grid(images, rows=2).size == (3 * 64, 2 * 64)

def test_same_seed_same_bytes_and_batch_picture_equals_picture_alone(pipe):
    run = lambda ps, g: pipe(ps, num_inference_steps=3, generator=g, output_type='np').images
    a, b = run(PROMPT, gen(5)), run(PROMPT, gen(5))
    assert np.array_equal(a, b) and not np.array_equal(a, run(PROMPT, gen(6)))
    batch = run([PROMPT] * 3, generators(4, 3))
    np.testing.assert_allclose(batch[1], a[0], atol=1e-4)  # picture 1 of a batch seeded 4 = the picture seeded 5

# --- guidance by hand

def test_guide_is_uncond_at_0_and_cond_at_1():
    u, c = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert torch.equal(guide(u, c, 0), u) and torch.allclose(guide(u, c, 1), c)
    torch.testing.assert_close(guide(u, c, 7.5), u + 7.5 * (c - u))

@pytest.mark.parametrize('negative', [None, 'green'])
def test_hand_guidance_step_matches_the_pipeline(pipe, negative):
    pipe.scheduler = ddim(pipe)
    latents = torch.randn(2, 4, 8, 8, generator=gen(0))
    seen = {}
    def grab(p, i, t, kw):
        if i == 0: seen['t'], seen['latents'] = t, kw['latents'].clone()
        return kw
    pipe([PROMPT] * 2, negative_prompt=None if negative is None else [negative] * 2, latents=latents, num_inference_steps=5,
         guidance_scale=6.0, callback_on_step_end=grab, output_type='latent')
    sched = ddim(pipe); sched.set_timesteps(5)
    t = sched.timesteps[0]
    assert t == seen['t']
    uncond, cond = noise_predictions(pipe, latents * sched.init_noise_sigma, t, PROMPT, negative)
    mine = sched.step(guide(uncond, cond, 6.0), t, latents * sched.init_noise_sigma).prev_sample
    torch.testing.assert_close(mine, seen['latents'], rtol=1e-5, atol=1e-5)
    pipe.scheduler = sd_scheduler('pndm')

def test_noise_predictions_needs_one_prompt_per_latent(pipe):
    with pytest.raises(ValueError, match='one prompt'):
        noise_predictions(pipe, torch.randn(3, 4, 8, 8), 500, [PROMPT, PROMPT])

# --- watching it work

@pytest.mark.parametrize('scheduler,steps,every,calls', [('ddim', 10, 3, 10), ('ddim', 10, 4, 10), ('ddim', 7, 1, 7), ('pndm', 10, 5, 11)])
def test_latents_callback_frame_count(pipe, scheduler, steps, every, calls):
    pipe.scheduler = ddim(pipe) if scheduler == 'ddim' else sd_scheduler('pndm')
    cb = latents_callback(pipe, every=every)
    pipe(PROMPT, num_inference_steps=steps, generator=gen(0), callback_on_step_end=cb)
    assert len(cb.timesteps) == calls
    expected = list(range(1, calls + 1, every)) + ([] if (calls - 1) % every == 0 else [calls])  # steps 1, 1+every, …, and the last
    assert cb.frame_steps == expected and len(cb.frames) == len(expected)
    assert all(isinstance(f, Image.Image) and f.size == (64, 64) for f in cb.frames)
    pipe.scheduler = sd_scheduler('pndm')

def test_last_frame_is_the_pipelines_picture(pipe):
    cb = latents_callback(pipe, every=100)
    out = pipe(PROMPT, num_inference_steps=4, generator=gen(1), callback_on_step_end=cb).images[0]
    diff = np.abs(np.asarray(cb.frames[-1], float) - np.asarray(out, float)).max()
    assert diff <= 1  # the same latents through the same VAE (rounding aside)

def test_decode_latents_gives_pictures(pipe):
    assert [im.size for im in decode_latents(pipe, torch.randn(2, 4, 8, 8))] == [(64, 64)] * 2

# --- img2img

@pytest.mark.parametrize('scheduler', ['ddim', 'pndm'])
@pytest.mark.parametrize('strength', [0.2, 0.5, 0.75, 1.0])
def test_img2img_runs_int_steps_times_strength(pipe, scheduler, strength):
    i2i = img2img_from(pipe)
    i2i.scheduler = ddim(pipe) if scheduler == 'ddim' else sd_scheduler('pndm')
    seen = []
    def count(p, i, t, kw): seen.append(int(t)); return kw
    i2i(PROMPT, image=DigitScenes(1, seed=3).pil(0), strength=strength, num_inference_steps=20, generator=gen(0), callback_on_step_end=count)
    planned = img2img_timesteps(i2i.scheduler, 20, strength)
    assert seen == planned.tolist()
    extra = 1 if scheduler == 'pndm' else 0  # PNDM's schedule repeats one time step to warm up
    assert len(seen) == int(20 * strength) + extra

def test_img2img_timesteps_leaves_the_scheduler_alone(pipe):
    sched = ddim(pipe); sched.set_timesteps(7)
    before = sched.timesteps.clone()
    img2img_timesteps(sched, 30, 0.5)
    assert torch.equal(sched.timesteps, before)

# --- textual inversion

def outline_set(n=4, seed=1):
    ds = DigitScenes(n, seed=seed, styles=('outline',))
    return [ds.pil(i) for i in range(n)], [caption(ds.scene(i)).replace(', drawn in outline', ', <outline>') for i in range(n)]

def test_textual_inversion_learns_only_the_new_row(saved):
    p = fresh(saved)
    emb0 = p.text_encoder.get_input_embeddings().weight.detach().clone()
    unet0 = {k: v.clone() for k, v in p.unet.state_dict().items()}
    images, prompts = outline_set()
    log = train_textual_inversion(p, images, prompts, token='<outline>', steps=5, lr=1e-2, batch_size=2, progress=False)
    assert len(log['loss']) == 5 and all(np.isfinite(log['loss']))
    assert log['probe_step'] == [0, 5] and len(log['probe']) == 2  # fixed-noise loss before and after
    emb = p.text_encoder.get_input_embeddings().weight.detach()
    tid = p.tokenizer.convert_tokens_to_ids('<outline>')
    assert tid == len(emb0) and len(emb) == len(emb0) + 1 and len(p.tokenizer) == len(emb)
    assert torch.equal(emb[:len(emb0)], emb0)                       # every other row exactly as it was
    assert not torch.allclose(emb[tid], emb0.mean(0))               # the new row moved from its start
    assert all(torch.equal(v, unet0[k]) for k, v in p.unet.state_dict().items())
    assert not p.text_encoder.get_input_embeddings().weight.requires_grad
    assert p.tokenizer.tokenize('a 7, <outline>')[-1] == '<outline>'

def test_textual_inversion_file_loads_into_a_fresh_pipeline(saved, tmp_path):
    p = fresh(saved)
    train_textual_inversion(p, *outline_set(), token='<outline>', steps=2, batch_size=2, progress=False)
    path = save_textual_inversion(p, '<outline>', tmp_path / 'concept')
    assert path.name == 'learned_embeds.safetensors'
    sd = load_file(path)
    assert list(sd) == ['<outline>'] and sd['<outline>'].shape == (1, 32) and sd['<outline>'].dtype == torch.float16
    for source in (path, path.parent):  # a file or a folder
        q = fresh(saved)
        assert '<outline>' not in q.tokenizer.get_vocab()
        q.load_textual_inversion(str(source))
        tid = q.tokenizer.convert_tokens_to_ids('<outline>')
        assert '<outline>' in q.tokenizer.get_vocab() and q.tokenizer.tokenize('<outline>') == ['<outline>']
        torch.testing.assert_close(q.text_encoder.get_input_embeddings().weight[tid].detach(), sd['<outline>'][0].float())
        assert q(f'{PROMPT}, <outline>', num_inference_steps=2, generator=gen(0)).images[0].size == (64, 64)

def test_textual_inversion_of_several_vectors_round_trips_through_diffusers(saved, tmp_path):
    "A word of 3 vectors: only those rows learn, the file holds (3, dim), and a fresh pipeline draws the trainer's pictures from it."
    p = fresh(saved)
    emb0 = p.text_encoder.get_input_embeddings().weight.detach().clone()
    images, prompts = outline_set()
    train_textual_inversion(p, images, prompts, token='<outline>', vectors=3, steps=4, lr=5e-2, batch_size=2, progress=False)
    emb = p.text_encoder.get_input_embeddings().weight.detach()
    assert concept_tokens('<outline>', 3) == ['<outline>', '<outline>_1', '<outline>_2'] and len(emb) == len(emb0) + 3
    assert torch.equal(emb[:len(emb0)], emb0) and not torch.allclose(emb[-3:], emb[-3:].mean(0))
    path = save_textual_inversion(p, '<outline>', tmp_path / 'three')
    assert load_file(path)['<outline>'].shape == (3, 32)
    # the trainer's pipeline rounded to what the file holds (fp16) must draw what a fresh pipeline loading the file draws
    with torch.no_grad(): p.text_encoder.get_input_embeddings().weight[-3:] = load_file(path)['<outline>'].float()
    q = fresh(saved); q.load_textual_inversion(str(path))
    draw = lambda pipe: pipe(f'{PROMPT}, <outline>', num_inference_steps=3, generator=gen(0), output_type='np').images
    assert np.abs(draw(p) - draw(q)).max() * 255 <= 2
    # training sees the word as the pipeline does when it draws: all its tokens, so a later fine-tune on it learns them all
    ids = tokenize_prompts(p, [f'{PROMPT}, <outline>'])[0].tolist()
    assert all(p.tokenizer.convert_tokens_to_ids(t) in ids for t in concept_tokens('<outline>', 3))

def test_textual_inversion_init_token(saved):
    p = fresh(saved)
    red = p.text_encoder.get_input_embeddings().weight[p.tokenizer.convert_tokens_to_ids('red</w>')].detach().clone()
    train_textual_inversion(p, *outline_set(), token='<outline>', init_token='red', steps=1, lr=1e-9, progress=False)
    torch.testing.assert_close(p.text_encoder.get_input_embeddings().weight[-1].detach(), red, atol=1e-6, rtol=0)

# --- Dreambooth

def test_dreambooth_changes_the_unet_only(saved):
    p = fresh(saved)
    te0 = {k: v.clone() for k, v in p.text_encoder.state_dict().items()}
    unet0 = {k: v.clone() for k, v in p.unet.state_dict().items()}
    ds = DigitScenes(4, seed=3, fonts=('cmtt10',))
    images, plain = [ds.pil(i) for i in range(4)], [caption(ds.scene(i)) for i in range(4)]
    log = train_dreambooth(p, images, [f'{c}, jqz' for c in plain], 'jqz', steps=3, batch_size=2, prior_images=images[:2], prior_prompts=plain[:2], progress=False)
    assert len(log['loss']) == 3 and all(np.isfinite(log['loss'])) and log['probe_step'] == [0, 3]
    assert any(not torch.equal(v, unet0[k]) for k, v in p.unet.state_dict().items())
    assert all(torch.equal(v, te0[k]) for k, v in p.text_encoder.state_dict().items())
    assert not any(q.requires_grad for q in p.unet.parameters())

def test_dreambooth_lora_trains_the_adapter_only_and_round_trips_through_diffusers(saved, tmp_path):
    p = fresh(saved)
    unet0 = {k: v.clone() for k, v in p.unet.state_dict().items()}
    ds = DigitScenes(4, seed=3, fonts=('cmtt10',))
    log = train_dreambooth(p, [ds.pil(i) for i in range(4)], [f'{caption(ds.scene(i))}, jqz' for i in range(4)], 'jqz', steps=4, lr=1e-2,
                           lora_rank=4, progress=False)
    assert all(np.isfinite(log['loss']))
    state = p.unet.state_dict()
    base_keys = [k for k in state if 'lora_' not in k]
    lora_keys = [k for k in state if 'lora_B' in k]
    assert lora_keys and not any(q.requires_grad for q in p.unet.parameters())
    # the base weights, under peft's names, exactly as they were; the adapter's B matrices left their start
    assert all(torch.equal(state[k], unet0[k.replace('.base_layer', '')]) for k in base_keys)
    path = save_dreambooth(p, tmp_path / 'lora')
    assert (path / 'pytorch_lora_weights.safetensors').exists()
    weights = load_file(path / 'pytorch_lora_weights.safetensors')
    assert all(v.dtype == torch.float16 for v in weights.values())
    q = fresh(saved); q.load_lora_weights(str(path))
    with torch.no_grad():  # the trainer's adapter rounded as the file holds it
        for k in lora_keys: state[k].copy_(state[k].half().float())
        for k in [k for k in state if 'lora_A' in k]: state[k].copy_(state[k].half().float())
    draw = lambda pipe: pipe(f'{PROMPT}, jqz', num_inference_steps=3, generator=gen(0), output_type='np').images
    a, b, plain = draw(p), draw(q), draw(fresh(saved))
    assert np.abs(a - b).max() * 255 <= 2 and np.abs(a - plain).max() * 255 > 2

def test_dreambooth_fits_its_pictures(saved):
    p = fresh(saved)
    ds = DigitScenes(4, seed=3, fonts=('cmtt10',))
    log = train_dreambooth(p, [ds.pil(i) for i in range(4)], [f'{caption(ds.scene(i))}, jqz' for i in range(4)], 'jqz', steps=30, lr=1e-3, progress=False)
    assert log['probe_step'] == [0, 10, 20, 30] and log['probe'][-1] < log['probe'][0]

def test_fixed_noise_loss_is_deterministic_and_sees_the_prompt(pipe):
    ds = DigitScenes(4, seed=0)
    z = encode_images(pipe, [ds.pil(i) for i in range(4)])
    assert z.shape == (4, 4, 8, 8)
    ps = [caption(ds.scene(i)) for i in range(4)]
    a, b = fixed_noise_loss(pipe, z, ps), fixed_noise_loss(pipe, z, ps)
    assert a == b and a != fixed_noise_loss(pipe, z, [''] * 4)
    assert tokenize_prompts(pipe, ps).shape == (4, pipe.tokenizer.model_max_length)

# --- bad input: one clear error each

def test_bad_inputs_give_clear_errors(saved, pipe, tmp_path):
    images, prompts = outline_set(2)
    cases = [
        (lambda: latents_callback(pipe, every=0), 'every must be'),
        (lambda: img2img_timesteps(pipe.scheduler, 10, 1.5), r'strength must be in \[0, 1\]'),
        (lambda: img2img_timesteps(pipe.scheduler, 0, 0.5), 'steps must be'),
        (lambda: generators(0, 0), 'n must be'),
        (lambda: encode_images(pipe, [Image.new('RGB', (32, 32))]), '64×64'),
        (lambda: encode_images(pipe, []), 'no images'),
        (lambda: train_textual_inversion(pipe, images, prompts[:1], token='<outline>'), 'one prompt per image'),
        (lambda: train_textual_inversion(pipe, images, [PROMPT] * 2, token='<outline>'), 'must contain the new token'),
        (lambda: train_textual_inversion(pipe, images, ['red'] * 2, token='red'), 'already a token'),
        (lambda: add_token(pipe, 'seven'), 'already a token'),
        (lambda: add_token(pipe, '<new>', init_token='zzzqqq'), 'single token'),
        (lambda: train_textual_inversion(pipe, images, prompts, token='<outline>', init_token='purple red'), 'single token'),
        (lambda: train_textual_inversion(fresh(saved).to(torch.float16), images, prompts, token='<outline>'), 'float32'),
        (lambda: train_dreambooth(fresh(saved).to(torch.float16), images, prompts, '<outline>'), 'float32'),
        (lambda: train_dreambooth(pipe, images, PROMPT, '<outline>'), 'must be a list'),
        (lambda: train_dreambooth(pipe, images, prompts, '<outline>', prior_images=images), 'both prior_images and prior_prompts'),
        (lambda: train_dreambooth(pipe, images, [PROMPT] * 2, 'jqz'), 'must contain the rare word'),
        (lambda: train_dreambooth(pipe, images, prompts, '<outline>', prior_images=images, prior_prompts=prompts), 'must not contain the rare word'),
        (lambda: train_dreambooth(pipe, [], [], 'jqz'), 'at least one image'),
        (lambda: train_dreambooth(pipe, [images[0], images[1].resize((32, 32))], prompts, '<outline>'), '64×64'),
        (lambda: train_textual_inversion(pipe, [images[0], images[1].resize((32, 32))], prompts, token='<outline>'), '64×64'),
        (lambda: train_textual_inversion(pipe, [], [], token='<outline>'), 'at least one image'),
        (lambda: train_textual_inversion(pipe, images, prompts, token='<outline>', vectors=0), 'vectors must be'),
        (lambda: train_dreambooth(pipe, images, prompts, '<outline>', lora_rank=0), 'lora_rank must be'),
        (lambda: save_textual_inversion(pipe, '<never-trained>', tmp_path), 'not in this pipeline'),
        (lambda: fixed_noise_loss(pipe, torch.randn(2, 4, 8, 8), [PROMPT]), 'one prompt per latent'),
        (lambda: train_textual_inversion(pipe, images, prompts, token='<outline>', batch_size=0), 'batch_size must be'),
        (lambda: train_textual_inversion(pipe, images, prompts, token='<outline>', steps=0), 'steps must be'),
        (lambda: train_textual_inversion(pipe, images, [p.replace('<outline>', ' ') for p in prompts], token=' '),
         'token must be one new word'),
        (lambda: train_dreambooth(pipe, images, prompts, '<outline>', batch_size=0), 'batch_size must be'),
        (lambda: train_dreambooth(pipe, images, prompts, '<outline>', lr=math.nan), 'lr must be'),
        (lambda: train_dreambooth(pipe, images, [p + ' ' for p in prompts], ' '), 'word must be one rare word'),
        (lambda: train_dreambooth(pipe, ['a.png', 'b.png'], prompts, '<outline>'), 'images must be PIL pictures'),
        (lambda: save_textual_inversion(pipe, '<new>', tmp_path / 'x.bin'), 'saved as .safetensors'),
        (lambda: save_textual_inversion(pipe, '<new>', tmp_path, dtype=torch.int8), 'floating-point'),
    ]
    for i, (call, msg) in enumerate(cases):
        with pytest.raises(ValueError, match=msg): call()
    assert not (tmp_path / 'x.bin').exists()
    assert '<outline>' not in pipe.tokenizer.get_vocab()  # a refused call changed nothing
    assert not getattr(pipe.unet, 'peft_config', None)     # not even an adapter added

def test_saving_refuses_an_existing_output(saved, tmp_path):
    p = fresh(saved)
    train_textual_inversion(p, *outline_set(2), token='<outline>', steps=1, batch_size=2, progress=False)
    (tmp_path / 'taken').mkdir(); (tmp_path / 'taken' / 'learned_embeds.safetensors').write_bytes(b'keep me')
    for call in (lambda: save_textual_inversion(p, '<outline>', tmp_path / 'taken'), lambda: save_dreambooth(p, tmp_path / 'taken')):
        with pytest.raises(FileExistsError, match='exists already'): call()
    assert (tmp_path / 'taken' / 'learned_embeds.safetensors').read_bytes() == b'keep me'
    assert sorted(x.name for x in (tmp_path / 'taken').iterdir()) == ['learned_embeds.safetensors']

@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message given without a GPU')
def test_cuda_peak_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match='no CUDA GPU'): cuda_peak(lambda: None)
