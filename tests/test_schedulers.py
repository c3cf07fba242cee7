"""Noise schedules and schedulers written by hand give diffusers' numbers: every step of whole trajectories."""
import inspect
import pytest, torch
import diffusers as d
from sdfound import schedulers as S

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')  # numpy 2 notes from inside diffusers

# SD 1.5's scheduler_config.json; diffusers fills each scheduler's own defaults for what it leaves out
SD15 = dict(beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear', num_train_timesteps=1000, clip_sample=False,
            set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, trained_betas=None)
SD_CONFIG = d.PNDMScheduler.from_config(SD15).config          # what `pipe.scheduler.config` holds for SD 1.5
TINY_CONFIG = dict(SD15, timestep_spacing='leading')          # our tiny model's saved config spells the spacing out
W = torch.randn(4, 4, generator=torch.Generator().manual_seed(0)) / 2

def toy_model(x, t):
    "A fixed 'UNet': mostly proportional to its input, like a denoiser, plus a channel mix and a time-dependent shift."
    return 0.5 * x + 0.1 * torch.einsum('oc,bchw->bohw', W, x) + 0.1 * torch.sin(torch.as_tensor(t, dtype=torch.float32) / 100)

def close(a, b): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

# ---- noise schedules --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('schedule,kw', [('linear', dict(beta_start=0.0001, beta_end=0.02)), ('scaled_linear', {}),
                                         ('squaredcos_cap_v2', {})])
def test_betas_and_alphas_cumprod_match_diffusers(schedule, kw):
    kw = dict(dict(beta_start=0.00085, beta_end=0.012), **kw)
    ref = d.DDPMScheduler(beta_schedule=schedule, **kw)
    betas = S.make_betas(schedule, **kw)
    close(betas, ref.betas)
    close(S.alphas_cumprod_from(betas), ref.alphas_cumprod)

def test_scaled_linear_is_sd_schedule():
    β = S.scaled_linear_betas()
    close(β, torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2)
    assert abs(β[0].item() - 0.00085) < 1e-9 and abs(β[-1].item() - 0.012) < 1e-9

def test_sigmas_match_euler_scheduler_training_sigmas():
    ref = d.EulerDiscreteScheduler.from_config(SD_CONFIG)  # before set_timesteps: all 1000 σ's, largest first, then 0
    σ = S.sigmas_from(S.alphas_cumprod_from(S.scaled_linear_betas()))
    close(σ.flip(0), ref.sigmas[:-1])

@pytest.mark.parametrize('n', [10, 50])
@pytest.mark.parametrize('karras', [False, True])
@pytest.mark.parametrize('config', [SD_CONFIG, TINY_CONFIG], ids=['sd15', 'tiny'])
def test_sigma_schedule_matches_euler_set_timesteps(n, karras, config):
    ref = d.EulerDiscreteScheduler.from_config(config, use_karras_sigmas=karras); ref.set_timesteps(n)
    ours = S.Euler.from_config(config, use_karras_sigmas=karras); ours.set_timesteps(n)
    close(ours.sigmas, ref.sigmas)
    close(ours.timesteps, ref.timesteps)
    close(torch.as_tensor(ours.init_noise_sigma), torch.as_tensor(ref.init_noise_sigma))

def test_karras_sigmas_formula():
    σ = S.karras_sigmas(0.03, 14.6, 5)
    assert σ[0].item() == pytest.approx(14.6) and σ[-1].item() == pytest.approx(0.03)
    assert torch.all(σ[:-1] > σ[1:])
    steps = σ ** (1 / 7)
    close((steps[:-1] - steps[1:]).float(), (steps[:-1] - steps[1:]).mean().float().expand(4))  # even in σ^(1/ρ)

@pytest.mark.parametrize('spacing', ['linspace', 'leading', 'trailing'])
@pytest.mark.parametrize('n', [7, 10, 50])
def test_inference_timesteps_match_ddim(spacing, n):
    ref = d.DDIMScheduler(steps_offset=1, timestep_spacing=spacing); ref.set_timesteps(n)
    assert torch.equal(S.inference_timesteps(n, timestep_spacing=spacing).round().long(), ref.timesteps)

def test_add_noise_matches_diffusers():
    g = torch.Generator().manual_seed(0)
    x0, ε, t = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g), torch.tensor([1, 500, 999])
    close(S.DDIM.from_config(SD_CONFIG).add_noise(x0, ε, t), d.DDIMScheduler.from_config(SD_CONFIG).add_noise(x0, ε, t))

def test_bad_schedule_names_are_clear_errors():
    with pytest.raises(ValueError, match='beta_schedule'): S.make_betas('cubic')
    with pytest.raises(ValueError, match='timestep_spacing'): S.inference_timesteps(10, timestep_spacing='random')

# ---- schedulers: whole trajectories ----------------------------------------------------------------------------
PAIRS = {'ddpm': (S.DDPM, d.DDPMScheduler), 'ddim': (S.DDIM, d.DDIMScheduler), 'euler': (S.Euler, d.EulerDiscreteScheduler),
         'euler_a': (S.EulerAncestral, d.EulerAncestralDiscreteScheduler), 'lms': (S.LMS, d.LMSDiscreteScheduler),
         'dpm++2m': (S.DPMSolverPP2M, d.DPMSolverMultistepScheduler)}

def diffusers_trajectory(scheduler, n, seed=0, shape=(2, 4, 8, 8), **step_kwargs):
    "The same loop as `sdfound.schedulers.trajectory`, written here against diffusers' scheduler only."
    scheduler.set_timesteps(n)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * scheduler.init_noise_sigma
    if 'generator' in inspect.signature(scheduler.step).parameters: step_kwargs['generator'] = g
    outs = []
    for t in scheduler.timesteps:
        out = scheduler.step(toy_model(scheduler.scale_model_input(x, t), t), t, x, **step_kwargs)
        outs.append(out); x = out.prev_sample
    return scheduler.timesteps, outs

def check_same_trajectory(ours_cls, theirs_cls, n, config=SD_CONFIG, ctor={}, **step_kwargs):
    ours, theirs = ours_cls.from_config(config, **ctor), theirs_cls.from_config(config, **ctor)
    if theirs_cls is d.DPMSolverMultistepScheduler: assert theirs.config.algorithm_type == 'dpmsolver++' and theirs.config.solver_order == 2
    a = S.trajectory(ours, toy_model, n, shape=(2, 4, 8, 8), **step_kwargs)
    ts, b = diffusers_trajectory(theirs, n, **step_kwargs)
    assert torch.equal(ours.timesteps.to(ts.dtype), ts) or torch.allclose(ours.timesteps.to(ts.dtype), ts, rtol=1e-6)
    close(torch.as_tensor(ours.init_noise_sigma), torch.as_tensor(theirs.init_noise_sigma))
    assert len(a) == len(b) == n
    for i, (x, y) in enumerate(zip(a, b)):
        close(x.prev_sample, y.prev_sample)
        if getattr(y, 'pred_original_sample', None) is not None: close(x.pred_original_sample, y.pred_original_sample)
    return a

@pytest.mark.parametrize('n', [10, 50])
@pytest.mark.parametrize('name', list(PAIRS))
def test_scheduler_matches_diffusers_on_sd15_config(name, n):
    check_same_trajectory(*PAIRS[name], n)

@pytest.mark.parametrize('name', list(PAIRS))
def test_scheduler_matches_diffusers_with_leading_spacing(name):
    check_same_trajectory(*PAIRS[name], 20, config=TINY_CONFIG)

@pytest.mark.parametrize('n', [10, 50])
@pytest.mark.parametrize('name', ['euler', 'lms'])
def test_karras_sigma_schedulers_match_diffusers(name, n):
    check_same_trajectory(*PAIRS[name], n, ctor=dict(use_karras_sigmas=True))

@pytest.mark.parametrize('n', [10, 50])
def test_ddim_with_eta_matches_diffusers(n):
    a = check_same_trajectory(S.DDIM, d.DDIMScheduler, n, eta=1.0)
    b = S.trajectory(S.DDIM.from_config(SD_CONFIG), toy_model, n, shape=(2, 4, 8, 8))
    assert (a[-1].prev_sample - b[-1].prev_sample).abs().max() > 1e-2  # η really adds noise

def test_dpm_solver_uses_second_order_in_the_middle():
    "Turning the 2M correction off (a first-order solver) changes the result: the correction is really applied."
    ours = S.trajectory(S.DPMSolverPP2M.from_config(SD_CONFIG), toy_model, 10)
    first = d.DPMSolverMultistepScheduler.from_config(SD_CONFIG, solver_order=1)
    _, theirs1 = diffusers_trajectory(first, 10, shape=(1, 4, 8, 8))
    assert (ours[-1].prev_sample - theirs1[-1].prev_sample).abs().max() > 1e-4

def test_default_spacing_follows_diffusers_defaults_for_sd15():
    for name, (ours, theirs) in PAIRS.items():
        assert ours.from_config(SD_CONFIG).timestep_spacing == theirs.from_config(SD_CONFIG).config.timestep_spacing, name

def test_from_config_reads_every_setting_and_kwargs_override():
    s = S.DDIM.from_config(dict(SD15, beta_end=0.02, timestep_spacing='trailing'), set_alpha_to_one=True)
    assert abs(s.betas[-1].item() - 0.02) < 1e-7 and s.timestep_spacing == 'trailing' and s.final_alpha_cumprod == 1
    e = S.Euler.from_config(TINY_CONFIG, use_karras_sigmas=True)
    assert e.timestep_spacing == 'leading' and e.steps_offset == 1 and e.use_karras_sigmas

def test_step_output_indexes_like_diffusers():
    s = S.DDIM(); s.set_timesteps(5)
    x = torch.randn(1, 4, 8, 8)
    out = s.step(toy_model(x, s.timesteps[0]), s.timesteps[0], x)
    assert out[0] is out.prev_sample and out[1] is out.pred_original_sample

def test_stateful_schedulers_count_calls():
    "LMS remembers slopes: calling step twice for one model output corrupts its state (why the loop calls it once)."
    s = S.LMS.from_config(SD_CONFIG); s.set_timesteps(10)
    x = torch.randn(1, 4, 8, 8) * s.init_noise_sigma
    eps = toy_model(s.scale_model_input(x, s.timesteps[0]), s.timesteps[0])
    s.step(eps, s.timesteps[0], x); s.step(eps, s.timesteps[0], x)
    assert s.step_index == 2 and len(s.derivatives) == 2
