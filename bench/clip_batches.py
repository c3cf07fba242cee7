"""Random batches against same-colour batches for CLIP's contrastive training: does the small CLIP learn to read digits?

    python bench/clip_batches.py            # both, 1,000 steps of 250 pictures each (≈15 min per run on one CPU core)
    python bench/clip_batches.py --steps 200
Each run trains the tiny CLIP from the same start on the same 20,000 pictures, then asks 1,000 unseen pictures which
digit they show (zero-shot: ten captions that differ only in the digit) and compares the caption embeddings of
"a red 1 …" and "a red 7 …"."""
import argparse, time
import numpy as np
import torch
from transformers import CLIPModel
from sdfound import clip as sclip
from sdfound.train import fit
from sdfound.core import seed_everything
from sdfound.data import DigitScenes, COLOURS
from sdfound.train import batch_sampler
from sdfound.data import TRAIN_FONTS, render_pictures, to_unit

def zero_shot_digit(model, tok, images, labels) -> float:
    pictures = sclip.image_embeddings(model, to_unit(images))
    right = 0
    for j in range(len(images)):
        fg, bg = COLOURS[labels['fg'][j]], COLOURS[labels['bg'][j]]
        texts = sclip.text_embeddings(model, tok, [f'a {fg} {d} on a {bg} background' for d in range(10)])
        right += int((texts @ pictures[j]).argmax() == labels['digit'][j])
    return right / len(images)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=1000); ap.add_argument('--n', type=int, default=20_000)
    a = ap.parse_args()
    held_images, _, held_labels = render_pictures(DigitScenes(1000, seed=10_000, fonts=TRAIN_FONTS))
    rows = []
    for name in ('random', 'same-colour'):
        seed_everything(0)
        images, caps, labels = render_pictures(DigitScenes(a.n, seed=0, fonts=TRAIN_FONTS))
        tok = sclip.train_tokenizer(caps, 400)
        ids = sclip.tokenize(tok, caps)
        model = CLIPModel(sclip.tiny_clip_config(tok, 128))
        pick = sclip.same_colour_batches(labels, groups=25) if name == 'same-colour' else batch_sampler(len(ids), 250, 1)
        t0 = time.time()
        losses = fit(model, sclip.clip_loss, lambda s: (lambda i: dict(input_ids=ids[i], pixel_values=to_unit(images[i])))(pick(s)),
                     a.steps, lr=1e-3, desc=name)
        secs = time.time() - t0
        model.eval()
        cos = float(sclip.text_embeddings(model, tok, ['a red 1 on a blue background']) @ sclip.text_embeddings(model, tok, ['a red 7 on a blue background']).T)
        rows.append((name, np.mean(losses[-20:]), zero_shot_digit(model, tok, held_images, held_labels), cos, secs))
    print(f"\n{a.steps} steps × 250 pictures, 1,000 unseen pictures, CPU threads={torch.get_num_threads()}\n")
    print("| batches | final loss | zero-shot digit | cos('a red 1 …', 'a red 7 …') | train s |\n|---|---:|---:|---:|---:|")
    for name, loss, acc, cos, secs in rows: print(f"| {name} | {loss:.2f} | {acc:.1%} | {cos:.3f} | {secs:.0f} |")

if __name__ == '__main__': main()
