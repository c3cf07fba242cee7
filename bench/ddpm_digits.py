"""How often the shipped noise-predicting UNet draws the digit asked for, judged by the magic-function classifier.

    python bench/ddpm_digits.py                     # 10 pictures per digit, 25/50 steps, guidance 1 and 3
    python bench/ddpm_digits.py --n-per-digit 100 --steps 50 --guidance 1 2 3 5
Prints markdown tables: accuracy per (steps, guidance) with ms per picture, and accuracy per digit."""
import argparse, time
import torch
from sdfound.ddpm import digit_accuracy, load_ddpm, sample
from sdfound.magic import digit_logprob, load_magic

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n-per-digit', type=int, default=10); ap.add_argument('--steps', type=int, nargs='+', default=[25, 50])
    ap.add_argument('--guidance', type=float, nargs='+', default=[1.0, 3.0])
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    unet, clf = load_ddpm(), load_magic()
    n = 10 * a.n_per_digit
    print(f"shipped TinyUNet, {n} pictures ({a.n_per_digit} per digit), DDIM η=0, seeds {a.seed}…, CPU {a.threads} thread(s)\n")
    print("| steps | guidance | digit asked for = digit read | P(digit) | ms per picture |\n|---:|---:|---:|---:|---:|")
    for steps in a.steps:
        for g in a.guidance:
            t0 = time.perf_counter()
            acc, x, pred = digit_accuracy(unet, clf, a.n_per_digit, steps, a.seed, guidance=g)
            ms = (time.perf_counter() - t0) * 1000 / n
            with torch.no_grad(): p = digit_logprob(clf, (x + 1) / 2).exp().mean().item()
            print(f"| {steps} | {g:g} | {acc:.1%} | {p:.3f} | {ms:.1f} |")
    per_digit = (pred == torch.arange(10).repeat_interleave(a.n_per_digit)).float().view(10, -1).mean(1)
    print(f"\nper digit, {a.steps[-1]} steps, guidance {a.guidance[-1]:g}:\n\n| " + " | ".join(map(str, range(10))) + " |\n|" + "---:|" * 10)
    print("| " + " | ".join(f"{v:.0%}" for v in per_digit) + " |")
    with torch.no_grad():
        x = sample(unet, n=min(n, 200), steps=a.steps[-1], seed=a.seed)[-1]
        print(f"\nno label, {len(x)} pictures: the classifier's P(digit) {digit_logprob(clf, (x + 1) / 2).exp().mean():.3f}")

if __name__ == '__main__': main()
