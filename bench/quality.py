"""Quality and speed of a text-to-image model on DigitScenes, scored by the shipped evaluator.

    python bench/quality.py                 # the shipped tiny model
    python bench/quality.py --model runs/x/tiny --fid-n 1000
    python bench/quality.py --dtype bfloat16    # the same model computing in bfloat16 (fast where the CPU has AVX512-BF16)
Prints markdown tables: prompt adherence at guidance 7.5 and 1.0, the negative-prompt test, a classifier-feature
FID against real pictures, and ms per picture at 20 steps with guidance
(float32 and bfloat16). `--dtype` picks the number format of the quality tables."""
import argparse, time
from pathlib import Path
import torch
from sdfound.data import DigitScenes, COLOURS
from sdfound.evaluator import load_classifier, quality_prompts, prompt_adherence, generate_tensors, classify, fid
from sdfound.pipelines import load_pipeline
from sdfound.core import models_dir
from sdfound.data import TRAIN_FONTS, to_unit

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='tiny'); ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--fid-n', type=int, default=1000); ap.add_argument('--evaluator', default=None)
    ap.add_argument('--dtype', choices=['float32', 'bfloat16'], default='float32')
    a = ap.parse_args()
    torch.manual_seed(0)
    pipe = load_pipeline(a.model, device='cpu', dtype=getattr(torch, a.dtype), scheduler='ddim')
    pipe.set_progress_bar_config(disable=True)
    clf = load_classifier(a.evaluator)
    prompts = quality_prompts()
    print(f"model: {a.model} in {a.dtype}; {len(prompts)} prompts (every digit × foreground colour × 3 backgrounds), DDIM {a.steps} steps, seeds 0…\n")
    print("| guidance | digit | fg colour | digit and fg | bg colour | s |\n|---:|---:|---:|---:|---:|---:|")
    for g in (7.5, 3.0, 1.0):
        t0 = time.time(); r = prompt_adherence(pipe, clf, prompts, guidance=g, steps=a.steps)
        print(f"| {g} | {r['digit']:.1%} | {r['fg']:.1%} | {r['digit+fg']:.1%} | {r['bg']:.1%} | {time.time() - t0:.0f} |")

    # negative prompt: no foreground colour in the prompt; how often is the foreground red?
    bgs = [c for c in COLOURS if c != 'red']
    neg_prompts = [f"a {d} on a {bgs[(d + k) % len(bgs)]} background".replace('a 8', 'an 8').replace('a orange', 'an orange')
                   for k in range(20) for d in range(10)]
    print(f"\n| {len(neg_prompts)} prompts naming no foreground colour, guidance 7.5 | red foregrounds |\n|---|---:|")
    for label, neg in (('no negative prompt', None), ('negative prompt "red"', 'red')):
        pred = classify(clf, generate_tensors(pipe, neg_prompts, negative=neg, guidance=7.5, steps=a.steps, seed=1000))
        print(f"| {label} | {(pred['fg'] == COLOURS.index('red')).float().mean():.1%} |")

    # classifier-feature FID: pictures generated from real captions vs the real pictures
    real = DigitScenes(a.fid_n, seed=123_456, fonts=TRAIN_FONTS)
    real_x = torch.stack([real[i]['image'] for i in range(a.fid_n)])
    fake_x = generate_tensors(pipe, [real[i]['caption'] for i in range(a.fid_n)], guidance=7.5, steps=a.steps, seed=5000)
    real2 = DigitScenes(a.fid_n, seed=654_321, fonts=TRAIN_FONTS)
    real2_x = torch.stack([real2[i]['image'] for i in range(a.fid_n)])
    print(f"\n| FID (evaluator features), {a.fid_n} vs {a.fid_n} | value |\n|---|---:|")
    print(f"| generated (guidance 7.5, {a.steps} steps) vs real | {fid(clf, real_x, fake_x):.2f} |")
    print(f"| real vs other real (floor) | {fid(clf, real_x, real2_x):.2f} |")

    # speed, in both number formats: bfloat16 is faster where the CPU multiplies it natively (AVX512-BF16, AMX)
    pipes = {dt: load_pipeline(a.model, device='cpu', dtype=getattr(torch, dt), scheduler='ddim') for dt in ('float32', 'bfloat16')}
    for p in pipes.values(): p.set_progress_bar_config(disable=True)
    print(f"\n| 20 steps, guidance 7.5, CPU threads={torch.get_num_threads()} | float32 ms per picture | bfloat16 ms per picture |\n|---|---:|---:|")
    for bs in (1, 8):
        ps, ms = ['a red 7 on a blue background'] * bs, {dt: [] for dt in pipes}
        for p in pipes.values(): generate_tensors(p, ps, steps=20)  # warm up
        for _ in range(3):  # interleaved, so that a busier moment of the machine slows both alike; the best of three
            for dt, p in pipes.items():
                t0 = time.perf_counter(); generate_tensors(p, ps, steps=20); ms[dt].append((time.perf_counter() - t0) / bs * 1000)
        print(f"| batch {bs} | {min(ms['float32']):.0f} | {min(ms['bfloat16']):.0f} |")

    if a.model == 'tiny':
        sizes = {p.name: sum(f.stat().st_size for f in p.rglob('*') if f.is_file()) / 2**20 for p in models_dir().iterdir() if p.is_dir()}
        print("\n| shipped folder | MB |\n|---|---:|")
        for k, v in sorted(sizes.items()): print(f"| {k} | {v:.1f} |")
        print(f"| total | {sum(sizes.values()):.1f} |")

if __name__ == '__main__': main()
