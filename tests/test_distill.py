"""Consistency distillation (lesson 08b): the LCM step and the teacher's step equal diffusers', the shipped adapter
draws right in 4 steps in plain diffusers, `train distill` runs and resumes, and `generate --fast` draws with it."""
import json
import numpy as np, pytest, torch
from conftest import random_small_pipeline, run_cli

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::FutureWarning')

@pytest.mark.parametrize('steps', [1, 2, 3, 4, 8, 50])
@pytest.mark.parametrize('config', [{}, dict(original_inference_steps=25, timestep_scaling=5.0)])
def test_lcm_step_by_hand_equals_diffusers(steps, config):
    from diffusers import LCMScheduler
    from sdfound.schedulers import LCM, trajectory, sd_scheduler
    if steps > config.get('original_inference_steps', 50): pytest.skip('more steps than the grid holds')
    base = dict(sd_scheduler('ddim').config, **config)
    theirs, ours = LCMScheduler.from_config(base), LCM.from_config(base)
    model = lambda x, t: torch.tanh(x * 2 - t / 500)  # any function of (x, t) stands in for the UNet
    a, b = trajectory(theirs, model, steps, seed=steps), trajectory(ours, model, steps, seed=steps)
    assert torch.equal(theirs.timesteps, ours.timesteps)
    for x, y in zip(a, b):
        torch.testing.assert_close(y.prev_sample, x.prev_sample)
        torch.testing.assert_close(y.pred_original_sample, x.denoised)

def test_boundary_scalings_are_lcm_schedulers():
    from diffusers import LCMScheduler
    from sdfound.schedulers import boundary_scalings, sd_scheduler
    sched = LCMScheduler.from_config(sd_scheduler('ddim').config)
    for t in (0, 1, 7, 19, 500, 999):
        ours, theirs = boundary_scalings(t), sched.get_scalings_for_boundary_condition_discrete(t)
        assert np.allclose([float(v) for v in ours], [float(v) for v in theirs], rtol=1e-6, atol=0)
    assert [float(v) for v in boundary_scalings(0)] == [1.0, 0.0]  # f(x, 0) = x, whatever the UNet says

@pytest.fixture(scope='module')
def small():
    from sdfound.schedulers import sd_scheduler
    return random_small_pipeline(sd_scheduler('ddim'))

def test_teacher_step_is_a_guided_ddim_step(small):
    from diffusers import DDIMScheduler
    from sdfound.distill import teacher_step
    from sdfound.pipelines import guide
    g = torch.Generator().manual_seed(0)
    x, text, uncond = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 32, 32, generator=g), torch.randn(3, 32, 32, generator=g)
    ddim = DDIMScheduler.from_config(small.scheduler.config)
    ddim.set_timesteps(50)  # its step from t goes to t − 20, as the teacher's grid
    for t in (999, 519, 39):
        ours = teacher_step(small.unet, x, torch.full((3,), t), torch.full((3,), t - 20), text, uncond, 4.0, ddim.alphas_cumprod)
        with torch.no_grad():
            e_u, e_c = small.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, text])).sample.chunk(2)
        theirs = ddim.step(guide(e_u, e_c, 4.0), t, x).prev_sample
        torch.testing.assert_close(ours, theirs)

def test_the_student_is_its_input_at_time_zero_and_the_loss_is_zero_when_answers_agree(small):
    from sdfound.distill import consistency_fn, pseudo_huber
    x, text = torch.randn(2, 4, 8, 8), torch.randn(2, 32, 32)
    with torch.no_grad(): out = consistency_fn(small.unet, x, torch.zeros(2, dtype=torch.long), text, small.scheduler.alphas_cumprod)
    assert torch.equal(out, x)
    assert pseudo_huber(x, x, 1e-3).item() == 0
    assert pseudo_huber(x, x + 10, 1e-3).item() == pytest.approx(10, rel=1e-3)  # far apart: the absolute error

def test_the_shipped_adapter_draws_the_asked_digit_and_colour_in_4_steps_in_plain_diffusers():
    from diffusers import LCMScheduler, StableDiffusionPipeline
    from sdfound.core import models_dir
    from sdfound.data import DigitScenes, TRAIN_FONTS, parse_caption
    from sdfound.evaluator import adherence, classify, generate_tensors, load_classifier
    assert (models_dir() / 'tiny-lcm' / 'pytorch_lora_weights.safetensors').stat().st_size <= 0.6e6
    pipe = StableDiffusionPipeline.from_pretrained(models_dir() / 'tiny', dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_lora_weights(models_dir() / 'tiny-lcm')
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    held_out = DigitScenes(100, seed=424_242, fonts=TRAIN_FONTS)  # captions neither the teacher nor the student saw
    prompts = [held_out[i]['caption'] for i in range(100)]
    x = generate_tensors(pipe, prompts, guidance=1.0, steps=4, batch_size=100)
    right = adherence(classify(load_classifier(), x), [parse_caption(p) for p in prompts])['digit+fg']
    assert right >= 0.95, right

def test_train_distill_quick_runs_resumes_and_refuses_another_recipe(tmp_path):
    from safetensors.torch import load_file
    out = tmp_path / 'run'
    r = run_cli('train', 'distill', '--quick', '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'distilled in' in r.stdout and (out / 'adapter' / '.done').exists()
    first = load_file(out / 'adapter' / 'pytorch_lora_weights.safetensors')
    report = json.loads((out / 'report.json').read_text())
    assert len(report['loss']) == report['recipe']['steps'] and report['probe_step'][-1] == report['recipe']['steps']
    # stopped after its last checkpoint, before the adapter was saved: the same command saves the same adapter
    for p in (out / 'adapter', out / 'report.json'):
        import shutil
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert run_cli('train', 'distill', '--quick', '--out', out).returncode == 0
    again = load_file(out / 'adapter' / 'pytorch_lora_weights.safetensors')
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    r = run_cli('train', 'distill', '--quick', '--seed', '1', '--out', out)
    assert r.returncode == 2 and 'seed 0 (now 1)' in r.stderr, r.stderr

def test_generate_fast_draws_what_plain_diffusers_draws_with_the_adapter(tmp_path):
    from PIL import Image
    from diffusers import LCMScheduler
    from sdfound.core import models_dir
    from sdfound.pipelines import load_pipeline
    r = run_cli('generate', 'a red 7 on a blue background', '--fast', '--seed', '3', '-o', tmp_path / 'fast.png')
    assert r.returncode == 0, r.stderr
    pipe = load_pipeline('tiny')
    pipe.load_lora_weights(models_dir() / 'tiny-lcm')
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    plain = pipe('a red 7 on a blue background', num_inference_steps=4, guidance_scale=1.0,
                 generator=torch.Generator().manual_seed(3), output_type='np').images[0]
    ours = np.asarray(Image.open(tmp_path / 'fast.png'), dtype=np.float32) / 255
    assert np.abs(ours - plain).max() <= 2 / 255  # the adapter merged into the weights: the same picture, to rounding

def test_generate_fast_takes_a_learned_word(tmp_path):
    from sdfound.concepts import concepts_dir
    r = run_cli('generate', 'a red 7 on a blue background, <halloween>', '--fast', '--embedding',
                concepts_dir() / 'halloween' / 'learned_embeds.safetensors', '-o', tmp_path / 'x.png')
    assert r.returncode == 0 and (tmp_path / 'x.png').exists(), r.stderr
