"""Train the `InkClip` that lesson 06 loads: hard-negative (same-colour) batches, the lesson's zero-shot quiz every
`--every` steps. Prints the quiz as it goes and a table at the end; `--ship` saves it into sdfound/models/ink-clip.

    python bench/ink_clip.py --ship                        # the shipped one: 2,000 steps of 100 pictures
    python bench/ink_clip.py --batches random --write ''   # the same model on random batches
"""
import argparse, json, time
from pathlib import Path
import torch
from transformers import CLIPTokenizer
from sdfound.clip import InkClip, clip_loss, same_colour_batches, tokenize, zero_shot_quiz
from sdfound.core import quiet_libraries, models_dir, save_weights, seed_everything
from sdfound.data import DigitScenes, render_pictures, to_unit
from sdfound.train import fit, batch_sampler

def main(a):
    quiet_libraries()
    t0 = time.time()
    tok = CLIPTokenizer.from_pretrained(models_dir() / 'tiny-clip')
    images, captions, labels = render_pictures(DigitScenes(a.pictures, seed=13), progress=False)  # every font
    pixels = to_unit(images)
    ids = tokenize(tok, captions)
    pick = (same_colour_batches(labels, a.groups, seed=0) if a.batches == 'same-colour'
            else batch_sampler(len(ids), 10 * a.groups, seed=0))
    seed_everything(0)
    model = InkClip(len(tok), tok.model_max_length, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id)
    quiz, rows = DigitScenes(200, seed=12), []
    def probe(step, m=None):
        if step % a.every and step != a.steps: return
        model.eval()
        rows.append(dict(step=step, **zero_shot_quiz(model, tok, quiz), minutes=round((time.time() - t0) / 60, 1)))
        model.train()
        print(rows[-1], flush=True)
    def get(step):
        i = pick(step)
        return dict(input_ids=ids[i], pixel_values=pixels[i])
    losses = fit(model, clip_loss, get, a.steps, lr=a.lr, warmup=20, progress=False, before_step=probe)
    model.eval()
    probe(a.steps)
    table = '\n'.join(['| step | digit | colour | minutes |', '|---:|---:|---:|---:|'] +
                      [f"| {r['step']} | {r['digit']:.1%} | {r['colour']:.1%} | {r['minutes']} |" for r in rows])
    params = sum(p.numel() for p in model.parameters())
    threads = torch.get_num_threads()
    print(table, f"\n{params:,} weights; final loss {sum(losses[-20:]) / 20:.3f}; torch threads {threads}")
    if a.ship: save_weights(model, models_dir() / 'ink-clip')
    if a.write:
        command = f"python bench/ink_clip.py --batches {a.batches}{' --ship' if a.ship else ''}"
        Path(a.write).write_text(f"## `{command}`\n\n{params:,} weights, {a.steps} steps of {10 * a.groups} pictures "
                                 f"({a.batches}), lr {a.lr}, torch threads {threads}; the lesson's quiz "
                                 f"(`DigitScenes(200, seed=12)`):\n\n{table}\n")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--steps', type=int, default=2000)
    p.add_argument('--groups', type=int, default=10, help='same-colour groups of 10 pictures per batch')
    p.add_argument('--batches', choices=['same-colour', 'random'], default='same-colour')
    p.add_argument('--pictures', type=int, default=6000)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--every', type=int, default=250)
    p.add_argument('--ship', action='store_true', help='save the model into sdfound/models/ink-clip')
    p.add_argument('--write', default='bench/results/ink_clip_run.md', help="markdown file ('' for none)")
    main(p.parse_args())
