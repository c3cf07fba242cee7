"""Seconds per training step of the tiny model's UNet (with its text encoder) and VAE, float32 vs bf16 autocast.

    python bench/train_step.py            # both cores
Random batches of the recipe's sizes (UNet 128 latents, VAE 64 pictures); 3 warm-up and 8 timed steps each, with the
"math" attention kernel that `sdfound.core.fit` uses on the CPU. Prints a markdown table."""
import contextlib, time
import torch
from torch.nn.attention import sdpa_kernel, SDPBackend
from transformers import CLIPTextModel
from sdfound import vae as svae
from sdfound.tiny import TinyRecipe, models_dir, tiny_unet, unet_loss, sd_scheduler

def seconds_per_step(model, loss, bf16: bool, warmup: int = 3, timed: int = 8) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    half = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    for i in range(warmup + timed):
        if i == warmup: t0 = time.perf_counter()
        with half(), sdpa_kernel(SDPBackend.MATH): l = loss()
        l.backward(); opt.step(); opt.zero_grad()
    return (time.perf_counter() - t0) / timed

def main():
    torch.manual_seed(0)
    r, ns = TinyRecipe(), sd_scheduler('ddpm')
    te = CLIPTextModel.from_pretrained(models_dir() / 'tiny' / 'text_encoder', dtype=torch.float32)
    ids = torch.randint(0, te.config.vocab_size, (r.unet_batch, te.config.max_position_embeddings))
    print(f"| step (CPU threads={torch.get_num_threads()}) | float32 s | bf16 autocast s |\n|---|---:|---:|")
    for frozen in (False, True):
        te.requires_grad_(not frozen)
        m = torch.nn.ModuleDict(dict(unet=tiny_unet(r.unet_channels, r.width, r.unet_layers), text_encoder=te))
        b = dict(latents=torch.randn(r.unet_batch, 4, 8, 8), input_ids=ids)
        t = [seconds_per_step(m, lambda: unet_loss(m, b, ns), bf16) for bf16 in (False, True)]
        print(f"| UNet + text encoder{' (frozen)' if frozen else ''}, batch {r.unet_batch} | {t[0]:.3f} | {t[1]:.3f} |")
    vae = svae.tiny_vae(r.vae_channels)
    b = dict(pixel_values=torch.rand(r.vae_batch, 3, 64, 64) * 2 - 1)
    t = [seconds_per_step(vae, lambda: svae.vae_loss(vae, b), bf16) for bf16 in (False, True)]
    print(f"| VAE, batch {r.vae_batch} | {t[0]:.3f} | {t[1]:.3f} |")

if __name__ == '__main__': main()
