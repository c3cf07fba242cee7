"The tiny recipe's pieces: the UNet's shape knobs and the training loss."
import pytest, torch
from sdfound.ddpm import denoiser_loss
from sdfound.tiny import tiny_unet, TinyRecipe
from sdfound.schedulers import sd_scheduler

class _TextEncoder(torch.nn.Module):
    "Stands in for CLIP's text encoder: token ids → (batch, tokens, width) states."
    def __init__(self, width=32):
        super().__init__(); self.emb = torch.nn.Embedding(50, width)
    def forward(self, ids): return (self.emb(ids),)

def _models(lpb=1):
    torch.manual_seed(0)
    return torch.nn.ModuleDict(dict(unet=tiny_unet((16, 32, 32), 32, lpb), text_encoder=_TextEncoder()))

def test_layers_per_block_adds_resnets_and_parameters():
    one, two = tiny_unet((16, 32, 32), 32, 1), tiny_unet((16, 32, 32), 32, 2)
    assert len(one.down_blocks[0].resnets) == 1 and len(two.down_blocks[0].resnets) == 2
    assert sum(p.numel() for p in two.parameters()) > sum(p.numel() for p in one.parameters())
    assert TinyRecipe().unet_layers == 1

def _loss(models, batch, ns, gamma, seed=0):
    torch.manual_seed(seed)
    return denoiser_loss(models, batch, ns, gamma)

def test_min_snr_weighting_matches_a_hand_computation():
    ns, m = sd_scheduler('ddpm'), _models()
    batch = dict(latents=torch.randn(64, 4, 8, 8), input_ids=torch.randint(0, 50, (64, 6)))
    plain, weighted = _loss(m, batch, ns, None), _loss(m, batch, ns, 5.0)
    # redo the same draws by hand: same noise, same time steps, per-picture errors weighted by min(SNR, 5)/SNR
    torch.manual_seed(0)
    noise = torch.randn_like(batch['latents']); t = torch.randint(0, 1000, (64,))
    with torch.no_grad():
        pred = m['unet'](ns.add_noise(batch['latents'], noise, t), t, m['text_encoder'](batch['input_ids'])[0]).sample
    err = ((pred - noise) ** 2).mean((1, 2, 3))
    snr = ns.alphas_cumprod[t] / (1 - ns.alphas_cumprod[t])
    torch.testing.assert_close(plain.detach(), err.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weighted.detach(), (err * torch.minimum(snr, torch.tensor(5.0)) / snr).mean(), rtol=1e-5, atol=1e-6)
    assert (snr > 5).any() and weighted < plain  # some nearly-clean steps were drawn, and they now count less

def test_min_snr_changes_nothing_when_gamma_exceeds_every_snr():
    ns, m = sd_scheduler('ddpm'), _models()
    batch = dict(latents=torch.randn(8, 4, 8, 8), input_ids=torch.randint(0, 50, (8, 6)))
    huge = float(ns.alphas_cumprod[0] / (1 - ns.alphas_cumprod[0])) * 2
    torch.testing.assert_close(_loss(m, batch, ns, huge), _loss(m, batch, ns, None))

def test_plain_attention_computes_what_the_fused_kernel_does():
    "The CPU speed-up swaps how attention is computed, not what: same outputs and gradients, UNet and CLIP alike."
    import copy
    from diffusers.models.attention_processor import AttnProcessor
    from transformers import CLIPModel, CLIPTokenizer
    from sdfound import clip as sclip
    from sdfound.core import models_dir
    from sdfound.train import plain_attention
    torch.manual_seed(0)
    unet = tiny_unet((16, 32, 32), 32)
    z, t, text = torch.randn(4, 4, 8, 8), torch.tensor([1, 200, 500, 999]), torch.randn(4, 7, 32)
    fused_unet = copy.deepcopy(unet)
    assert plain_attention(unet) is unet
    assert all(isinstance(p, AttnProcessor) for p in unet.attn_processors.values())
    assert not any(isinstance(p, AttnProcessor) for p in fused_unet.attn_processors.values())
    outs = [m(z, t, text).sample for m in (fused_unet, unet)]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    grads = [torch.autograd.grad(o.square().sum(), m.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_q.weight)[0]
             for o, m in zip(outs, (fused_unet, unet))]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)

    tok = CLIPTokenizer.from_pretrained(models_dir() / 'tiny' / 'tokenizer')
    clip = CLIPModel(sclip.tiny_clip_config(tok, 32))
    fused_clip = copy.deepcopy(clip)
    plain_attention(clip)
    assert clip.config._attn_implementation == 'eager' and fused_clip.config._attn_implementation != 'eager'
    batch = dict(input_ids=sclip.tokenize(tok, ['a red 7 on a blue background', 'a 3']), pixel_values=torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(sclip.clip_loss(clip, batch), sclip.clip_loss(fused_clip, batch), rtol=1e-5, atol=1e-6)

def test_clip_batches_are_random_pictures_unless_same_colour_is_asked():
    from sdfound.tiny import clip_sampler
    pair = torch.arange(2000) // 10 % 16  # every digit in each of 16 colour pairs
    labels = dict(digit=torch.arange(2000) % 10, fg=pair % 4, bg=4 + pair // 4)
    colours = lambda idx: set(zip(labels['fg'][idx].tolist(), labels['bg'][idx].tolist()))
    rand = clip_sampler(TinyRecipe(clip_batch=50), labels)
    batch = rand(3)
    assert len(batch) == 50 and torch.equal(batch, rand(3)) and not torch.equal(batch, rand(4))  # reproducible, new each step
    assert len(colours(batch)) > 8  # random pictures: many colour pairs
    same = clip_sampler(TinyRecipe(clip_batch=50, clip_same_colour=True), labels)(3)
    groups = same.view(-1, 10)
    assert len(groups) == 5 and all(len(colours(g)) == 1 and sorted(labels['digit'][g].tolist()) == list(range(10)) for g in groups)
    with pytest.raises(ValueError, match='too small'): clip_sampler(TinyRecipe(clip_batch=5, clip_same_colour=True), labels)
