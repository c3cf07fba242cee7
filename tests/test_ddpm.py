"""Predicting the noise: our schedule, noising and sampling loop equal diffusers', and the shipped UNet draws the digit asked for."""
import pytest, torch
from types import SimpleNamespace
import diffusers as d
from sdfound.ddpm import (TinyUNet, add_noise, ddpm_schedule, denoise_step, digit_accuracy, load_ddpm, noise_batch, noise_loss,
                          one_hot_digits, sample, save_ddpm)

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

def close(a, b): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

def test_schedule_matches_diffusers_ddpm_scheduler():
    close(ddpm_schedule(), d.DDPMScheduler(beta_schedule='linear', beta_start=1e-4, beta_end=0.02).alphas_cumprod)

def test_add_noise_matches_diffusers():
    g = torch.Generator().manual_seed(0)
    x0, noise, t = torch.rand(6, 1, 28, 28, generator=g) * 2 - 1, torch.randn(6, 1, 28, 28, generator=g), torch.randint(0, 1000, (6,), generator=g)
    ref = d.DDPMScheduler()
    close(add_noise(x0, noise, t, ddpm_schedule()), ref.add_noise(x0, noise, t))

class ToyModel(torch.nn.Module):
    "A fixed stand-in for the UNet: mostly proportional to its input, plus a time-dependent shift."
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.7))
    def forward(self, x, t, labels=None): return self.w * x + 0.1 * torch.sin(t.float() / 50)

@pytest.mark.parametrize('steps', [10, 50])
def test_sampling_loop_matches_diffusers_ddim_every_step(steps):
    model = ToyModel()
    ours = sample(model, n=3, steps=steps, seed=0, every=1)
    ref = d.DDIMScheduler(beta_schedule='linear', timestep_spacing='trailing', set_alpha_to_one=True, clip_sample=True)
    ref.set_timesteps(steps)
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    close(ours[0], x)
    with torch.no_grad():
        for i, t in enumerate(ref.timesteps):
            x = ref.step(model(x, t), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
            close(ours[i + 1] if i + 1 < steps else ours[-1], x if i + 1 < steps else x.clamp(-1, 1))

def test_denoise_step_without_noise_prediction_error_recovers_x0():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1, torch.randn(2, 1, 8, 8, generator=g)
    ac = ddpm_schedule()
    xt = add_noise(x0, eps, torch.tensor([600, 600]), ac)
    prev, pred_x0 = denoise_step(xt, eps, ac[600], ac[400])
    close(pred_x0, x0)
    close(prev, add_noise(x0, eps, torch.tensor([400, 400]), ac))

def test_unet_keeps_the_shape_and_uses_the_label():
    torch.manual_seed(0)
    unet = TinyUNet().eval()
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([10, 200, 500, 999])
    with torch.no_grad():
        out = unet(x, t, one_hot_digits([1, 2, 3, 4]))
        assert out.shape == x.shape
        assert (out - unet(x, t, one_hot_digits([5, 6, 7, 8]))).abs().max() > 1e-3
        close(unet(x, t), unet(x, t, torch.zeros(4, 10)))  # no label = all-zero label

def test_noise_batch_is_deterministic_and_hides_labels():
    digits, labels = torch.rand(100, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (100,))
    b = noise_batch(digits, labels, 5, ddpm_schedule(), batch_size=400, label_dropout=0.5)
    assert torch.equal(b['noisy'], noise_batch(digits, labels, 5, ddpm_schedule(), batch_size=400, label_dropout=0.5)['noisy'])
    hidden = (b['labels'].sum(1) == 0).float().mean()
    assert 0.4 < hidden < 0.6 and b['t'].min() >= 0 and b['t'].max() <= 999
    assert noise_loss(TinyUNet(), b) > 0.5  # an untrained network is far from the noise

def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    unet = TinyUNet(channels=(8, 16, 16)).eval()
    save_ddpm(unet, tmp_path)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    with torch.no_grad(): torch.testing.assert_close(load_ddpm(tmp_path)(x, t), unet(x, t), atol=2e-2, rtol=2e-2)
    with pytest.raises(FileNotFoundError, match='no noise-predictor weights'): load_ddpm(tmp_path / 'missing')

@pytest.fixture(scope='module')
def shipped(): return load_ddpm()

def test_same_seed_gives_the_same_digits(shipped):
    a = sample(shipped, n=2, steps=5, seed=3)[-1]
    assert torch.equal(a, sample(shipped, n=2, steps=5, seed=3)[-1])
    assert not torch.equal(a, sample(shipped, n=2, steps=5, seed=4)[-1])

def test_guidance_one_is_the_labelled_prediction_and_more_moves_further(shipped):
    labels = one_hot_digits([3, 8])
    plain = sample(shipped, n=2, steps=5, labels=labels, seed=0)[-1]
    torch.testing.assert_close(sample(shipped, n=2, steps=5, labels=labels, seed=0, guidance=1.0)[-1], plain)
    unlabelled = sample(shipped, n=2, steps=5, seed=0)[-1]
    guided = sample(shipped, n=2, steps=5, labels=labels, seed=0, guidance=3.0)[-1]
    assert (guided - unlabelled).abs().mean() > (plain - unlabelled).abs().mean()

def test_shipped_unet_draws_the_digit_asked_for(shipped):
    from sdfound.magic import load_magic
    acc, x, pred = digit_accuracy(shipped, load_magic(), n_per_digit=5, steps=25, guidance=3.0)
    assert acc >= 0.8 and x.shape == (50, 1, 28, 28)

def test_stratified_timesteps_put_one_step_in_each_slice_of_the_schedule():
    from sdfound.ddpm import stratified_timesteps
    t = stratified_timesteps(8, 1000, torch.Generator().manual_seed(0))
    assert sorted((t // 125).tolist()) == list(range(8)) and t.dtype == torch.long
    assert not torch.equal(t, t.sort().values)  # in random order, not slice by slice

def test_denoiser_loss_uses_the_noise_and_time_steps_a_batch_brings():
    from sdfound.ddpm import denoiser_loss
    from sdfound.schedulers import sd_scheduler
    seen = {}
    class UNet(torch.nn.Module):  # predicts zero, and remembers what it was asked
        def forward(self, x, t, text):
            seen.update(x=x, t=t)
            return SimpleNamespace(sample=torch.zeros_like(x))
    models = dict(unet=UNet(), text_encoder=lambda ids: (ids.float()[..., None],))
    z, noise, t = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8), torch.tensor([0, 250, 500, 999])
    ns = sd_scheduler('ddpm')
    loss = denoiser_loss(models, dict(latents=z, input_ids=torch.ones(4, 3), noise=noise, timesteps=t), ns)
    assert torch.equal(seen['t'], t) and torch.allclose(seen['x'], ns.add_noise(z, noise, t))
    torch.testing.assert_close(loss, (noise ** 2).mean())  # a zero prediction misses by all the noise
