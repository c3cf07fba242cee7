"""Seconds per training step of the tiny model's UNet (with its text encoder), CLIP, VAE and the VAE's decoder alone: float32 vs bf16 autocast,
PyTorch's fused attention kernel vs plain matmul-and-softmax attention (`sdfound.train.plain_attention`).

    python bench/train_step.py            # both cores
Random batches of the recipe's sizes (UNet 128 latents, CLIP 250 pairs, VAE 64 pictures); 3 warm-up and 8 timed
steps each, the fused kernel being the "math" one that `sdfound.train.fit` picks on the CPU. Prints a markdown table."""
import contextlib, time
import torch
from torch.nn.attention import sdpa_kernel, SDPBackend
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer
from sdfound import clip as sclip, vae as svae
from sdfound.core import models_dir
from sdfound.evaluator import SceneClassifier
from sdfound.ddpm import denoiser_loss
from sdfound.tiny import TinyRecipe, decoder_loss, tiny_unet
from sdfound.schedulers import sd_scheduler
from sdfound.train import plain_attention

def seconds_per_step(model, loss, bf16: bool, warmup: int = 3, timed: int = 8) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    half = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    for i in range(warmup + timed):
        if i == warmup: t0 = time.perf_counter()
        with half(), sdpa_kernel(SDPBackend.MATH): l = loss()
        l.backward(); opt.step(); opt.zero_grad()
    return (time.perf_counter() - t0) / timed

def row(name, make_model, make_loss):
    "Time a fresh model per cell, so each starts from the same weights and the optimiser from zero."
    cells = []
    for plain in (False, True):
        for bf16 in (False, True):
            torch.manual_seed(0)
            m = make_model()
            if plain: plain_attention(m)
            cells.append(seconds_per_step(m, make_loss(m), bf16))
    print(f"| {name} | {cells[0]:.3f} | {cells[1]:.3f} | {cells[2]:.3f} | {cells[3]:.3f} |")

def main():
    r, ns = TinyRecipe(), sd_scheduler('ddpm')
    te_dir = models_dir() / 'tiny' / 'text_encoder'
    tok = CLIPTokenizer.from_pretrained(models_dir() / 'tiny' / 'tokenizer')
    random_ids = lambda n: torch.randint(0, len(tok), (n, tok.model_max_length), generator=torch.Generator().manual_seed(0))
    ids = random_ids(r.unet_batch)
    print(f"| step (CPU threads={torch.get_num_threads()}) | fused float32 s | fused bf16 s | plain float32 s | plain bf16 s |")
    print("|---|---:|---:|---:|---:|")
    for frozen in (False, True):
        def unet_and_text():
            te = CLIPTextModel.from_pretrained(te_dir, dtype=torch.float32).requires_grad_(not frozen)
            return torch.nn.ModuleDict(dict(unet=tiny_unet(r.unet_channels, r.width, r.unet_layers), text_encoder=te))
        b = dict(latents=torch.randn(r.unet_batch, 4, 8, 8), input_ids=ids)
        row(f"UNet + text encoder{' (frozen)' if frozen else ''}, batch {r.unet_batch}", unet_and_text, lambda m: lambda: denoiser_loss(m, b, ns))
    n = r.clip_batch
    cb = dict(input_ids=random_ids(n), pixel_values=torch.rand(n, 3, 64, 64) * 2 - 1)
    row(f"CLIP, batch {n}", lambda: CLIPModel(sclip.tiny_clip_config(tok, r.width)), lambda m: lambda: sclip.clip_loss(m, cb))
    vb = dict(pixel_values=torch.rand(r.vae_batch, 3, 64, 64) * 2 - 1)
    row(f"VAE, batch {r.vae_batch}", lambda: svae.tiny_vae(r.vae_channels, norm_groups=r.vae_norm_groups), lambda m: lambda: svae.vae_loss(m, vb))
    def frozen_encoder():
        vae = svae.tiny_vae(r.vae_channels, norm_groups=r.vae_norm_groups)
        vae.encoder.requires_grad_(False); vae.quant_conv.requires_grad_(False)
        return vae
    db = dict(latents=torch.randn(r.vae_batch, 4, 8, 8), **vb)
    perceptual = SceneClassifier().eval().requires_grad_(False)  # its cost does not depend on its weights
    row(f"VAE decoder alone + perceptual loss (`train_decoder_stage`), batch {r.vae_batch}", frozen_encoder,
        lambda m: lambda: decoder_loss(m, db, perceptual, r.decoder_perceptual))

if __name__ == '__main__': main()
