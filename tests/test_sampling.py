"""The Stable Diffusion loop by hand gives diffusers' pipelines' numbers; sampling as optimisation behaves as claimed."""
import numpy as np, pytest, torch
import diffusers as d
from conftest import random_small_pipeline
from sdfound import schedulers as S
from sdfound.data import DigitScenes
from sdfound.sampling import (parts, encode_text, step_kwargs, generate_by_hand, img2img_by_hand, sgd, momentum, adam,
                              descend, sample_with_optimiser, sample_momentum, sample_adam)

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::FutureWarning')

SD15 = dict(beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear', num_train_timesteps=1000, clip_sample=False,
            set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, trained_betas=None)  # SD 1.5's scheduler config
DIFFUSERS = {'pndm': d.PNDMScheduler, 'ddim': d.DDIMScheduler, 'euler': d.EulerDiscreteScheduler,
             'euler_a': d.EulerAncestralDiscreteScheduler, 'ddpm': d.DDPMScheduler, 'dpm++': d.DPMSolverMultistepScheduler}
PROMPT = 'a red 7 on a blue background'

def gen(seed): return torch.Generator().manual_seed(seed)
def close(a, b): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

@pytest.fixture(scope='module')
def pipe():
    "A complete, randomly initialised small SD pipeline: 64×64 pictures, 8×8×4 latents, a tokenizer trained on our captions."
    p = random_small_pipeline(d.PNDMScheduler.from_config(SD15))
    p.set_progress_bar_config(disable=True)
    return p

def with_scheduler(pipe, scheduler):
    "Our parts, with `scheduler`; and the pipeline with a fresh scheduler of the same kind and config."
    pipe.scheduler = type(scheduler).from_config(scheduler.config) if hasattr(scheduler, 'config') else pipe.scheduler
    return dict(parts(pipe), scheduler=scheduler)

# ---- text to image --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('negative', [None, 'green'])
@pytest.mark.parametrize('name', ['pndm', 'ddim', 'euler', 'euler_a', 'ddpm'])
def test_generate_by_hand_latents_match_pipeline(pipe, name, negative):
    sd = with_scheduler(pipe, DIFFUSERS[name].from_config(SD15))
    kw = dict(negative_prompt=negative, num_inference_steps=10, output_type='latent')
    ref = pipe(PROMPT, generator=gen(1), **kw).images
    ours = generate_by_hand(PROMPT, **sd, generator=gen(1), **kw)
    close(ours, ref)

def test_generate_by_hand_latents_match_pipeline_at_50_steps_with_guidance_3(pipe):
    sd = with_scheduler(pipe, d.DDIMScheduler.from_config(SD15))
    kw = dict(guidance_scale=3.0, num_inference_steps=50, output_type='latent')
    close(generate_by_hand(PROMPT, **sd, generator=gen(2), **kw), pipe(PROMPT, generator=gen(2), **kw).images)

def test_generate_by_hand_images_match_pipeline(pipe):
    sd = with_scheduler(pipe, d.DDIMScheduler.from_config(SD15))
    kw = dict(negative_prompt='blue', num_inference_steps=5)
    close(generate_by_hand(PROMPT, **sd, generator=gen(3), output_type='pt', **kw), pipe(PROMPT, generator=gen(3), output_type='pt', **kw).images)
    ours, ref = generate_by_hand(PROMPT, **sd, generator=gen(3), **kw)[0], pipe(PROMPT, generator=gen(3), **kw).images[0]
    assert ours.size == ref.size == (64, 64)
    assert np.abs(np.asarray(ours, int) - np.asarray(ref, int)).max() <= 1

def test_generate_by_hand_other_sizes(pipe):
    sd = with_scheduler(pipe, d.DDIMScheduler.from_config(SD15))
    kw = dict(height=128, width=96, num_inference_steps=3, output_type='latent')
    ours = generate_by_hand(PROMPT, **sd, generator=gen(4), **kw)
    assert ours.shape == (1, 4, 16, 12)
    close(ours, pipe(PROMPT, generator=gen(4), **kw).images)

@pytest.mark.parametrize('name,ours', [('ddim', S.DDIM), ('euler', S.Euler), ('euler_a', S.EulerAncestral), ('ddpm', S.DDPM),
                                       ('dpm++', S.DPMSolverPP2M), ('lms', S.LMS)])
def test_generate_by_hand_with_our_schedulers_matches_pipeline(pipe, name, ours):
    theirs = d.LMSDiscreteScheduler if name == 'lms' else DIFFUSERS[name]
    pipe.scheduler = theirs.from_config(SD15)
    sd = dict(parts(pipe), scheduler=ours.from_config(pipe.scheduler.config))
    kw = dict(num_inference_steps=10, output_type='latent')
    close(generate_by_hand(PROMPT, **sd, generator=gen(5), **kw), pipe(PROMPT, generator=gen(5), **kw).images)

def test_same_seed_same_picture_different_seed_different_picture(pipe):
    sd = with_scheduler(pipe, d.DDIMScheduler.from_config(SD15))
    a, b, c = (generate_by_hand(PROMPT, **sd, num_inference_steps=3, generator=gen(s), output_type='latent') for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)

def test_ddim_eta_is_passed_like_the_pipeline(pipe):
    sd = with_scheduler(pipe, d.DDIMScheduler.from_config(SD15))
    kw = dict(eta=1.0, num_inference_steps=5, output_type='latent')
    ours = generate_by_hand(PROMPT, **sd, generator=gen(6), **kw)
    close(ours, pipe(PROMPT, generator=gen(6), **kw).images)
    assert not torch.allclose(ours, generate_by_hand(PROMPT, **sd, generator=gen(6), num_inference_steps=5, output_type='latent'))

def test_step_kwargs_follow_each_schedulers_signature():
    g = gen(0)
    assert step_kwargs(d.DDIMScheduler.from_config(SD15), g, 0.5) == dict(generator=g, eta=0.5)
    assert step_kwargs(d.PNDMScheduler.from_config(SD15), g) == {}
    assert step_kwargs(S.Euler(), g) == dict(generator=g)

def test_encode_text_pads_to_the_tokenizers_length(pipe):
    e = encode_text(pipe.tokenizer, pipe.text_encoder, PROMPT)
    assert e.shape == (1, pipe.tokenizer.model_max_length, 32)
    close(e, pipe.encode_prompt(PROMPT, 'cpu', 1, False)[0])

# ---- img2img ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def init_image(): return DigitScenes(1, seed=5).pil(0)

@pytest.mark.parametrize('strength', [0.3, 0.75, 1.0])
@pytest.mark.parametrize('name', ['pndm', 'ddim', 'euler', 'dpm++'])
def test_img2img_by_hand_matches_pipeline(pipe, init_image, name, strength):
    i2i = d.StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
    i2i.set_progress_bar_config(disable=True)
    i2i.scheduler = DIFFUSERS[name].from_config(SD15)
    sd = dict(parts(pipe), scheduler=DIFFUSERS[name].from_config(SD15))
    kw = dict(strength=strength, num_inference_steps=10, negative_prompt='green', output_type='latent')
    close(img2img_by_hand(init_image, PROMPT, **sd, generator=gen(3), **kw), i2i(PROMPT, image=init_image, generator=gen(3), **kw).images)

def test_img2img_with_no_step_to_run_is_a_clear_error(pipe, init_image):
    sd = dict(parts(pipe), scheduler=d.DDIMScheduler.from_config(SD15))
    with pytest.raises(ValueError, match='leaves no step'):
        img2img_by_hand(init_image, PROMPT, **sd, strength=0.05, num_inference_steps=10)

# ---- sampling as optimisation ---------------------------------------------------------------------------------------
def test_gradient_descent_is_the_euler_sampler(pipe):
    pipe.scheduler = d.EulerDiscreteScheduler.from_config(SD15)
    kw = dict(num_inference_steps=10, output_type='latent')
    ours = sample_with_optimiser(PROMPT, **parts(pipe), update=sgd(), generator=gen(1), **kw)
    close(ours, pipe(PROMPT, generator=gen(1), **kw).images)

def test_gradient_descent_with_karras_sigmas_is_euler_karras(pipe):
    pipe.scheduler = d.EulerDiscreteScheduler.from_config(SD15, use_karras_sigmas=True)
    kw = dict(num_inference_steps=8, output_type='latent')
    ours = sample_with_optimiser(PROMPT, **parts(pipe), use_karras_sigmas=True, generator=gen(1), **kw)
    close(ours, pipe(PROMPT, generator=gen(1), **kw).images)

def test_momentum_zero_is_gradient_descent_and_others_differ(pipe):
    sd, kw = parts(pipe), dict(num_inference_steps=6, output_type='latent')
    base = sample_with_optimiser(PROMPT, **sd, generator=gen(2), **kw)
    assert torch.equal(sample_momentum(PROMPT, **sd, beta=0.0, generator=gen(2), **kw), base)
    for other in (sample_momentum(PROMPT, **sd, beta=0.5, generator=gen(2), **kw), sample_adam(PROMPT, **sd, generator=gen(2), **kw)):
        assert other.shape == base.shape and torch.isfinite(other).all() and not torch.allclose(other, base)

def test_optimiser_samplers_are_deterministic_and_return_pictures(pipe):
    sd = parts(pipe)
    a = sample_adam(PROMPT, **sd, num_inference_steps=4, generator=gen(3), output_type='pt')
    assert torch.equal(a, sample_adam(PROMPT, **sd, num_inference_steps=4, generator=gen(3), output_type='pt'))
    imgs = sample_momentum(PROMPT, **sd, num_inference_steps=4, generator=gen(3))
    assert len(imgs) == 1 and imgs[0].size == (64, 64)

def test_descend_lands_on_a_point_mass_exactly():
    "For data that is a single point μ, x̂_0 = μ at every σ, and Euler (= gradient descent) ends exactly on μ."
    μ = torch.randn(4, 16, generator=gen(0), dtype=torch.float64)
    e = S.Euler(); e.set_timesteps(7); σ = e.sigmas.double()
    x = descend(μ + σ[0] * torch.randn(4, 16, generator=gen(1), dtype=torch.float64), σ, lambda x, i: (x - μ) / σ[i], sgd())
    close(x, μ)

def test_optimiser_updates():
    g, lr = torch.tensor([[2.0, -0.5]]), 0.1
    close(sgd()(g, lr, 0), lr * g)
    m = momentum(0.5)
    close(m(g, lr, 0), lr * g)                                          # bias correction: first step is the gradient
    close(m(torch.zeros_like(g), lr, 1), lr * (0.25 * g) / 0.75)        # then a decaying average
    close(adam()(g, lr, 0), lr * torch.sign(g))                         # per element, Adam's first step is lr·sign(g)
    one = adam(per_element=False)(g, lr, 0)
    close(one, lr * g / (g ** 2).mean().sqrt())                         # one RMS keeps the gradient's shape

# --- guidance by a loss
def test_loss_gradient_equals_finite_differences(pipe):
    from sdfound.sampling import loss_gradient, border_colour_loss
    vae = pipe.vae.double()
    try:
        g = gen(0)
        x, eps = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)
        ac, t, loss_fn = pipe.scheduler.alphas_cumprod.double(), 501, border_colour_loss('green')
        loss, grad = loss_gradient(x, eps, t, vae, ac, loss_fn)
        f = lambda z: loss_gradient(z, eps, t, vae, ac, loss_fn)[0].item()
        h = 1e-6
        for idx in [(0, 0, 0, 0), (0, 1, 3, 4), (0, 3, 7, 2), (0, 2, 5, 5)]:
            bump = torch.zeros_like(x); bump[idx] = h
            assert (f(x + bump) - f(x - bump)) / (2 * h) == pytest.approx(grad[idx].item(), rel=1e-4, abs=1e-9)
    finally: pipe.vae.float()

def test_loss_guidance_at_scale_zero_is_the_unguided_loop_exactly(pipe):
    from sdfound.sampling import LossGuidance, border_colour_loss
    sd = parts(pipe); sd['scheduler'] = d.DDIMScheduler.from_config(SD15)
    plain = generate_by_hand(PROMPT, **sd, num_inference_steps=6, generator=gen(3), output_type='latent')
    zero = generate_by_hand(PROMPT, **sd, num_inference_steps=6, generator=gen(3), output_type='latent',
                            loss=LossGuidance(border_colour_loss('green'), 0.0))
    moved = generate_by_hand(PROMPT, **sd, num_inference_steps=6, generator=gen(3), output_type='latent',
                             loss=LossGuidance(border_colour_loss('green'), 30.0))
    assert torch.equal(plain, zero) and not torch.equal(plain, moved)

def test_loss_guidance_refuses_what_it_cannot_take(pipe):
    from sdfound.sampling import LossGuidance, border_colour_loss
    sd, good = parts(pipe), LossGuidance(border_colour_loss('green'), 1.0)
    for loss, scheduler, msg in [(good, d.EulerDiscreteScheduler.from_config(SD15), 'x_t units'),
                                 ((lambda x: x.mean()), d.DDIMScheduler.from_config(SD15), 'must be a LossGuidance'),
                                 (LossGuidance(good.loss_fn, float('nan')), d.DDIMScheduler.from_config(SD15), 'loss.scale'),
                                 (LossGuidance(good.loss_fn, 1.0, every=0), d.DDIMScheduler.from_config(SD15), 'loss.every')]:
        with pytest.raises(ValueError, match=msg):
            generate_by_hand(PROMPT, **{**sd, 'scheduler': scheduler}, num_inference_steps=2, generator=gen(0), loss=loss)

def test_a_green_loss_makes_the_evaluator_read_green_backgrounds_more_often():
    from sdfound.data import COLOURS
    from sdfound.evaluator import classify, load_classifier
    from sdfound.pipelines import load_pipeline
    from sdfound.sampling import LossGuidance, border_colour_loss
    tiny = load_pipeline('tiny'); sd = parts(tiny); sd['scheduler'] = d.DDIMScheduler.from_config(tiny.scheduler.config)
    prompts = [f'the digit {w} in {c}' for w, c in zip(['two', 'five', 'seven', 'eight', 'zero', 'three'],
                                                      ['red', 'white', 'yellow', 'blue', 'orange', 'purple'])]
    def green_share(scale):
        x = torch.cat([generate_by_hand(p, **sd, num_inference_steps=20, generator=gen(i), output_type='pt',
                                        loss=LossGuidance(border_colour_loss('green'), scale, every=2)) for i, p in enumerate(prompts)])
        return (classify(load_classifier(), x * 2 - 1)['bg'] == COLOURS.index('green')).float().mean().item()
    assert green_share(50.0) >= green_share(0.0) + 0.3
