"""The autoencoder lesson: 48× compression, the scaling factor is 1/std of the latents, and the shipped VAE gives pictures back."""
import pytest, torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from sdfound.core import fit
from sdfound.data import DigitScenes
from sdfound.vae import ConvAutoencoder, autoencoder_loss, compute_scaling_factor, reconstruct, tiny_vae

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

def pictures(n, seed):
    ds = DigitScenes(n, seed=seed)
    return torch.stack([ds[i]['image'] for i in range(n)])

def test_autoencoder_compresses_64x64x3_to_8x8x4():
    torch.manual_seed(0)
    ae, x = ConvAutoencoder(), torch.rand(2, 3, 64, 64) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (2, 4, 8, 8) and x[0].numel() / z[0].numel() == 48
    assert ae.decode(z).shape == x.shape

def test_autoencoder_training_lowers_reconstruction_error():
    torch.manual_seed(0)
    x = pictures(64, seed=0)
    ae = ConvAutoencoder()
    get = lambda step: dict(pixel_values=x[torch.randint(0, 64, (16,), generator=torch.Generator().manual_seed(step))])
    with torch.no_grad(): before = autoencoder_loss(ae, dict(pixel_values=x)).item()
    fit(ae, autoencoder_loss, get, steps=40, lr=3e-3, warmup=5, progress=False)
    with torch.no_grad(): after = autoencoder_loss(ae, dict(pixel_values=x)).item()
    assert after < 0.5 * before

def test_scaling_factor_is_one_over_the_std_of_latents():
    torch.manual_seed(0)
    vae, x = tiny_vae(channels=(8, 8, 16, 16)).eval(), torch.rand(8, 3, 64, 64) * 2 - 1
    torch.manual_seed(1); sf = compute_scaling_factor(vae, x, batch_size=4)
    torch.manual_seed(1)
    with torch.no_grad(): z = torch.cat([vae.encode(x[i:i + 4]).latent_dist.sample() for i in (0, 4)])
    assert sf == pytest.approx(1 / z.std().item(), rel=1e-6)
    assert (z * sf).std().item() == pytest.approx(1.0, rel=1e-6)

def test_reconstruct_decodes_the_latent_mean():
    torch.manual_seed(0)
    vae, x = tiny_vae(channels=(8, 8, 16, 16)).eval(), torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad(): ref = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    torch.testing.assert_close(reconstruct(vae, x), ref)

@pytest.fixture(scope='module')
def shipped_vae():
    from sdfound.tiny import models_dir
    return AutoencoderKL.from_pretrained(models_dir() / 'tiny' / 'vae').eval()

def test_shipped_vae_latents_have_unit_std_after_scaling(shipped_vae):
    x = pictures(256, seed=3)
    with torch.no_grad(): z = shipped_vae.encode(x).latent_dist.mean
    assert z.shape == (256, 4, 8, 8)
    assert 0.85 < (z * shipped_vae.config.scaling_factor).std().item() < 1.15

def test_shipped_vae_reconstructs_unseen_pictures(shipped_vae):
    x = pictures(64, seed=4)
    err = (reconstruct(shipped_vae, x) - x).abs().mean().item() * 127.5  # in 0–255 levels
    assert err < 12
