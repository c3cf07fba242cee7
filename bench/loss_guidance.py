"""Guidance by a loss on the tiny model: how often the evaluator reads the steered background colour, how often the
asked digit survives, and the time per picture, by scale.

    python bench/loss_guidance.py              # 100 prompts, scales 0 10 20 50 100 300 (bench/results/loss_guidance.md)

The prompts name a digit and its colour but no background ("the digit seven in red"); the loss
(`sdfound.sampling.border_colour_loss`) pulls the picture's border towards green, a colour no prompt asks for. The
judge is the evaluator, not the loss. DDIM 20 steps, guidance 7.5, the loss every 2nd step, picture i seeded i."""
import argparse, time
import torch
from diffusers import DDIMScheduler
from sdfound.core import quiet_libraries
from sdfound.data import COLOURS, DIGIT_WORDS, with_articles, parse_caption
from sdfound.evaluator import load_classifier, classify
from sdfound.pipelines import load_pipeline
from sdfound.sampling import LossGuidance, border_colour_loss, generate_by_hand, parts

def steer_prompts(n: int, target: str) -> list[str]:
    "`n` prompts naming a digit and a foreground colour (never `target`), no background."
    fgs = [c for c in COLOURS if c != target]
    return [with_articles(f'the digit {DIGIT_WORDS[i % 10]} in {fgs[(i // 10 + i) % len(fgs)]}') for i in range(n)]

def sweep(pipe, prompts, scale: float, target: str, every: int, steps: int) -> dict:
    "The evaluator's readings of the steered pictures, and the time per picture."
    sd = parts(pipe)
    t0 = time.perf_counter()
    x = torch.cat([generate_by_hand(p, **sd, num_inference_steps=steps, generator=torch.Generator().manual_seed(i),
                                    output_type='pt', loss=LossGuidance(border_colour_loss(target), scale, every))
                   for i, p in enumerate(prompts)])
    ms = (time.perf_counter() - t0) / len(prompts) * 1000
    read = classify(load_classifier(), x * 2 - 1)
    wanted = [parse_caption(p) for p in prompts]
    digit = read['digit'] == torch.tensor([w['digit'] for w in wanted])
    fg = read['fg'] == torch.tensor([COLOURS.index(w['fg']) for w in wanted])
    return dict(target=(read['bg'] == COLOURS.index(target)).float().mean().item(), digit=digit.float().mean().item(),
                fg=fg.float().mean().item(), ms=ms)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=100); ap.add_argument('--target', default='green')
    ap.add_argument('--scales', type=float, nargs='+', default=[0, 10, 20, 50, 100, 300])
    ap.add_argument('--every', type=int, default=2); ap.add_argument('--steps', type=int, default=20)
    a = ap.parse_args()
    quiet_libraries()
    pipe = load_pipeline('tiny', device='cpu'); pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    prompts = steer_prompts(a.n, a.target)
    print(f"{a.n} prompts, background pulled to {a.target}; DDIM {a.steps} steps, guidance 7.5, the loss every "
          f"{a.every} steps; CPU threads {torch.get_num_threads()}\n")
    print(f"| scale | background read {a.target} | asked digit kept | asked colour kept | ms/picture |\n|---:|---:|---:|---:|---:|")
    for s in a.scales:
        r = sweep(pipe, prompts, s, a.target, a.every, a.steps)
        print(f"| {s:g} | {r['target']:.0%} | {r['digit']:.0%} | {r['fg']:.0%} | {r['ms']:.0f} |", flush=True)

if __name__ == '__main__': main()
