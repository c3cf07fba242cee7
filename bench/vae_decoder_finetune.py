"""Can a better decoder alone fix a VAE? Train only the decoder on the frozen encoder's latents (so a UNet trained on
those latents stays valid), optionally widened first without changing what it computes (Net2Net: every channel
copied, the weights that read the copies split unevenly between them), and print held-out PSNR and corner errors
every 250 steps.

    python bench/vae_decoder_finetune.py --steps 1000 --lr 3e-4                          # the decoder as it is
    python bench/vae_decoder_finetune.py --steps 1500 --lr 5e-4 --channels 16,32,64,128  # twice as wide
    python bench/vae_decoder_finetune.py --vae runs/x/vae --steps 500 --lr 2e-4 --save runs/x-ft/vae  # keep the result
    python bench/vae_decoder_finetune.py --feature-net runs/judge2 --feature-weight 1   # + a perceptual loss

Each row also gives what the shipped evaluator (or `--judge`) reads in the held-out reconstructions. A perceptual loss
compares a second classifier's features of the picture and of its reconstruction: a network sdfound trains itself
(no pretrained download), and not the judge, which would then be graded on what it was taught to see.
"""
import argparse, math, time
import numpy as np, torch
from diffusers import AutoencoderKL
from sdfound.core import models_dir
from sdfound.train import batch_sampler
from sdfound.data import DigitScenes
from sdfound.evaluator import load_classifier, classify
from sdfound.data import TRAIN_FONTS, render_pictures, to_unit
from sdfound.tiny import decoder_loss
from sdfound.vae import corner_errors, psnr

def widen(vae, channels, seed=0):
    "A wider AutoencoderKL that computes what `vae` does (each width a whole multiple; same blocks change width)."
    new, g, old_sd = AutoencoderKL.from_config({**vae.config, 'block_out_channels': tuple(channels)}), torch.Generator().manual_seed(seed), vae.state_dict()
    def widened(key, target):
        w = old_sd[key]
        for dim in reversed(range(min(2, w.dim()))):  # inputs first, so that copies of one output share their weights
            f = target.shape[dim] // w.shape[dim]
            if f == 1: continue
            w = w.repeat_interleave(f, dim)  # channel j copies channel j // f: GroupNorm groups stay whole
            if dim == 1:  # equal inputs: any split of their weight that sums to the original computes the same
                share = torch.rand(w.shape, generator=g) + 0.5
                w = w * share / share.unflatten(1, (-1, f)).sum(2).repeat_interleave(f, 1)
        return w
    new.load_state_dict({k: widened(k, t) for k, t in new.state_dict().items()})
    return new

def main(a):
    torch.set_num_threads(a.threads)
    vae = AutoencoderKL.from_pretrained(a.vae)
    judge = load_classifier(a.judge or None)
    feat = load_classifier(a.feature_net).requires_grad_(False) if a.feature_net else None
    if a.channels: vae = widen(vae, [int(c) for c in a.channels.split(',')])
    imgs = render_pictures(DigitScenes(a.n_images, seed=0, fonts=TRAIN_FONTS))[0]
    hx, _, hl = render_pictures(DigitScenes(1000, seed=10_000, fonts=TRAIN_FONTS)); hx = to_unit(hx)
    with torch.no_grad():
        d = [vae.encode(to_unit(imgs[i:i + 500])).latent_dist for i in range(0, len(imgs), 500)]
        mean, std, hz = torch.cat([q.mean for q in d]), torch.cat([q.std for q in d]), vae.encode(hx).latent_dist.mean
    parts = torch.nn.ModuleList([vae.post_quant_conv, vae.decoder])
    opt = torch.optim.AdamW(parts.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / max(a.steps, 1)))))
    pick, losses, t0 = batch_sampler(len(imgs), 64, 7), [], time.time()
    def row(step):
        with torch.no_grad(): r = vae.decode(hz).sample.clamp(-1, 1)
        c, p = corner_errors((r - hx).abs().mean((0, 1)) * 127.5), classify(judge, r)
        print(f"| {step} | {(time.time() - t0) / 60:.1f} | {np.mean(losses[-50:]) if losses else float('nan'):.4f} | {psnr(r, hx).mean():.2f} "
              f"| {' / '.join(f'{v:.1f}' for v in c.values())} | {' / '.join(f'{(p[k] == hl[k]).float().mean():.1%}' for k in ('digit', 'fg', 'bg'))} |", flush=True)
    print("| step | minutes | train loss | PSNR dB | corners TL / TR / BL / BR | judge: digit / fg / bg |\n|---:|---:|---:|---:|---|---|")
    row(0)
    for s in range(a.steps):
        i = pick(s)
        z = mean[i] + std[i] * torch.randn(mean[i].shape, generator=torch.Generator().manual_seed(s))
        loss = decoder_loss(vae, dict(latents=z, pixel_values=to_unit(imgs[i])), feat, a.feature_weight)
        loss.backward(); torch.nn.utils.clip_grad_norm_(parts.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
        losses.append(loss.item())
        if (s + 1) % a.every == 0 or s + 1 == a.steps: row(s + 1)
    if a.save: vae.eval().save_pretrained(a.save); print(f"saved {a.save}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--vae', default=str(models_dir() / 'tiny' / 'vae'))
    p.add_argument('--steps', type=int, default=1000)
    p.add_argument('--lr', type=float, default=3e-4)
    p.add_argument('--channels', default='', help='widen to these block channels first, e.g. 16,32,64,128')
    p.add_argument('--n-images', type=int, default=20_000)
    p.add_argument('--judge', default='', help='the evaluator that reads the reconstructions (default: the shipped one)')
    p.add_argument('--feature-net', default='', help='a SceneClassifier folder whose features give a perceptual loss')
    p.add_argument('--feature-weight', type=float, default=1.0)
    p.add_argument('--every', type=int, default=250, help='print a row every this many steps')
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--save', default='', help='save the fine-tuned VAE to this folder')
    main(p.parse_args())
