"""How well VAEs give pictures back: PSNR, L1, the corners' errors, and what the evaluator still reads (digit and
colours) in 1,000 held-out pictures after encode → decode.

    python bench/vae_recon.py sdfound/models/tiny/vae runs/a/vae runs/b/vae [--evaluator runs/a/evaluator] [--misread OUT.png]
Prints a markdown table, one row per VAE folder, scored by the shipped evaluator (or the one `--evaluator` names). PSNR is the mean over pictures of
10·log10(4 / MSE) on the [-1, 1] range; corners are the mean absolute error of each 8×8 corner in grey levels (0–255),
top-left / top-right / bottom-left / bottom-right. `--misread OUT.png` draws the first 12 pictures whose digit the judge
misreads after the first VAE: the originals on top, then one row per VAE, enlarged 2×."""
import sys
import torch
from sdfound.core import image_grid
from diffusers import AutoencoderKL
from sdfound.data import DigitScenes
from sdfound.evaluator import load_classifier, classify
from sdfound.data import TRAIN_FONTS, render_pictures, to_unit
from sdfound.vae import corner_errors, psnr, reconstruct

def main(folders, evaluator=None, misread=None):
    held = DigitScenes(1000, seed=10_000, fonts=TRAIN_FONTS)
    images, _, labels = render_pictures(held)
    x = to_unit(images)
    clf = load_classifier(evaluator)
    print(f"judge: {evaluator or 'the shipped evaluator'}\n")
    print("| VAE | PSNR | L1 (levels) | corners TL / TR / BL / BR | digit | fg colour | bg colour |\n|---|---:|---:|---|---:|---:|---:|")
    rows, picked = [], None
    for f in folders:
        vae = AutoencoderKL.from_pretrained(f).eval()
        recon = torch.cat([reconstruct(vae, x[i:i + 250]) for i in range(0, len(x), 250)])
        p = classify(clf, recon)
        if picked is None: picked = (p['digit'] != labels['digit']).nonzero().flatten()[:12]; rows.append(x[picked])
        rows.append(recon[picked])
        acc = {k: (p[k] == labels[k]).float().mean() for k in p}
        c = corner_errors((recon - x).abs().mean((0, 1)) * 127.5)
        print(f"| {f} | {psnr(recon, x).mean():.2f} dB | {(recon - x).abs().mean() * 127.5:.2f} | {' / '.join(f'{v:.1f}' for v in c.values())} "
              f"| {acc['digit']:.1%} | {acc['fg']:.1%} | {acc['bg']:.1%} |")
    if misread:
        pics = ((torch.cat(rows) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        from PIL import Image
        grid = image_grid([Image.fromarray(a) for a in pics], rows=len(rows), cols=len(picked))
        grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(misread)
        print(f"\n{misread}: the first {len(picked)} pictures whose digit the judge misreads after {folders[0]}; rows: originals, then {', '.join(folders)}")

if __name__ == '__main__':
    args = sys.argv[1:]
    ev = None
    if '--evaluator' in args: i = args.index('--evaluator'); ev = args[i + 1]; del args[i:i + 2]
    out = None
    if '--misread' in args: i = args.index('--misread'); out = args[i + 1]; del args[i:i + 2]
    if not args: sys.exit(__doc__)
    main(args, ev, out)
