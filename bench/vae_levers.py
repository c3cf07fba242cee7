"""Train one VAE variant on the tiny model's pictures and score it like `bench/vae_recon.py`.

    python bench/vae_levers.py NAME '{"groups": 2, "steps": 800}' [--threads 1]
Knobs (JSON): channels (default [8, 16, 32, 64]), groups (GroupNorm groups, default 8, as shipped), steps (2700),
batch (64), lr (1e-3), layers (resnets per block, 1), perceptual (weight of a loss on the shipped evaluator's features, 0),
n_images (40000). Saves to runs/vae-levers/NAME and prints one markdown row: PSNR, L1, corners, evaluator accuracy, minutes."""
import json, sys, time
from pathlib import Path
import torch, torch.nn.functional as F
from diffusers import AutoencoderKL
from sdfound.train import batch_sampler, fit
from sdfound.core import seed_everything
from sdfound.data import DigitScenes
from sdfound.evaluator import load_classifier, classify
from sdfound.data import TRAIN_FONTS, render_pictures, to_unit
from sdfound.vae import corner_errors, psnr, reconstruct, tiny_vae, vae_loss

def build(k):
    "The lesson's `tiny_vae` layout with the knobs applied (groups of one channel allowed here, to measure 0.1's VAE)."
    base = tiny_vae(tuple(k.get('channels', (8, 16, 32, 64))))
    return AutoencoderKL.from_config({**base.config, 'norm_num_groups': k.get('groups', 8), 'layers_per_block': k.get('layers', 1)})

def perceptual_loss(clf):
    "L1 between the evaluator's convolutional features of the picture and of its reconstruction (the evaluator frozen)."
    feats = clf.body[:4]  # down to 16×16: features that still say where things are
    for p in clf.parameters(): p.requires_grad_(False)
    return lambda a, b: F.l1_loss(feats(a), feats(b))

def main(name, knobs, threads):
    torch.set_num_threads(threads)
    seed_everything(0)
    images, _, _ = render_pictures(DigitScenes(knobs.get('n_images', 40_000), seed=0, fonts=TRAIN_FONTS), )
    vae, w = build(knobs), knobs.get('perceptual', 0)
    clf = load_classifier(None)
    ploss = perceptual_loss(clf) if w else None
    def loss(vae, batch):
        if not w: return vae_loss(vae, batch)
        x = batch['pixel_values']; post = vae.encode(x).latent_dist
        recon = vae.decode(post.sample()).sample
        return F.l1_loss(recon, x) + F.mse_loss(recon, x) + 1e-6 * post.kl().mean() + w * ploss(recon, x)
    pick = batch_sampler(len(images), knobs.get('batch', 64), 3)
    out = Path('runs/vae-levers') / name
    t0 = time.time()
    fit(vae, loss, lambda s: dict(pixel_values=to_unit(images[pick(s)])), knobs.get('steps', 2700), lr=knobs.get('lr', 1e-3),
        ckpt_dir=out / 'ckpt', desc=name, progress=False)
    minutes = (time.time() - t0) / 60
    vae.eval().save_pretrained(out / 'vae')
    held = DigitScenes(1000, seed=10_000, fonts=TRAIN_FONTS)
    himg, _, labels = render_pictures(held); x = to_unit(himg)
    recon = torch.cat([reconstruct(vae, x[i:i + 250]) for i in range(0, len(x), 250)])
    p = classify(clf, recon); acc = {k: (p[k] == labels[k]).float().mean() for k in p}
    c = corner_errors((recon - x).abs().mean((0, 1)) * 127.5)
    n_par = sum(p.numel() for p in vae.parameters())
    row = (f"| {name} `{json.dumps(knobs)}` | {n_par / 1e6:.2f} M | {psnr(recon, x).mean():.2f} dB | {(recon - x).abs().mean() * 127.5:.2f} | "
           f"{' / '.join(f'{v:.1f}' for v in c.values())} | {acc['digit']:.1%} | {acc['fg']:.1%} | {acc['bg']:.1%} | {minutes:.1f} ({threads} thr) |")
    print(row); (out / 'row.md').write_text(row + '\n')

if __name__ == '__main__':
    args = sys.argv[1:]
    threads = 2
    if '--threads' in args: i = args.index('--threads'); threads = int(args[i + 1]); del args[i:i + 2]
    if len(args) != 2: sys.exit(__doc__)
    main(args[0], json.loads(args[1]), threads)
