"""How well VAEs keep what the evaluator reads: digit and colours of 1,000 held-out pictures after encode → decode.

    python bench/vae_recon.py sdfound/models/tiny/vae runs/a/vae runs/b/vae
Prints a markdown table, one row per VAE folder, scored by the shipped evaluator."""
import sys
import torch
from diffusers import AutoencoderKL
from sdfound.data import DigitScenes
from sdfound.evaluator import load_classifier, classify
from sdfound.tiny import TRAIN_FONTS, render_pictures, to_unit
from sdfound.vae import reconstruct

def main(folders):
    held = DigitScenes(1000, seed=10_000, fonts=TRAIN_FONTS)
    images, _, labels = render_pictures(held)
    clf = load_classifier(None)
    print("| VAE | digit | fg colour | bg colour | L1 |\n|---|---:|---:|---:|---:|")
    for f in folders:
        vae = AutoencoderKL.from_pretrained(f).eval()
        recon = torch.cat([reconstruct(vae, to_unit(images[i:i + 250])) for i in range(0, len(images), 250)])
        p = classify(clf, recon)
        acc = {k: (p[k] == labels[k]).float().mean() for k in p}
        print(f"| {f} | {acc['digit']:.1%} | {acc['fg']:.1%} | {acc['bg']:.1%} | {(recon - to_unit(images)).abs().mean():.4f} |")

if __name__ == '__main__':
    if len(sys.argv) < 2: sys.exit(__doc__)
    main(sys.argv[1:])
